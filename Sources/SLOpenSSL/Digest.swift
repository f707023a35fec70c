internal import COpenSSL

/// Message digests through OpenSSL's EVP interface.
package enum Digest {
    package static func sha1(_ data: [UInt8]) throws -> [UInt8] { try digest(data, EVP_sha1()) }
    package static func sha256(_ data: [UInt8]) throws -> [UInt8] {
        let s = try SHA256Stream()
        try s.update(data[...])
        return try s.finish()
    }

    private static func digest(_ data: [UInt8], _ md: OpaquePointer?) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = data.withUnsafeBytes { input in
            out.withUnsafeMutableBufferPointer { output in
                EVP_Digest(input.baseAddress, input.count, output.baseAddress, &length, md, nil)
            }
        }
        guard ok == 1 else { throw OpenSSLError("OpenSSL digest failed") }
        return Array(out.prefix(Int(length)))
    }
}

/// SHA-256 over data given in pieces (a message whose body is spooled), behind
/// an owning wrapper of the EVP context.
package final class SHA256Stream {
    private let context: OpaquePointer

    package init() throws {
        guard let c = EVP_MD_CTX_new() else { throw OpenSSLError("OpenSSL digest context failed") }
        context = c
        guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else { throw OpenSSLError("OpenSSL digest init failed") }
    }

    deinit { EVP_MD_CTX_free(context) }

    package func update(_ data: ArraySlice<UInt8>) throws {
        let ok = data.withUnsafeBytes { EVP_DigestUpdate(context, $0.baseAddress, $0.count) }
        guard ok == 1 else { throw OpenSSLError("OpenSSL digest update failed") }
    }

    package func finish() throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard EVP_DigestFinal_ex(context, &out, &length) == 1 else { throw OpenSSLError("OpenSSL digest final failed") }
        return Array(out.prefix(Int(length)))
    }
}
