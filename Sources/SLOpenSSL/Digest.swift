internal import COpenSSL

/// Message digests through OpenSSL's EVP interface.
package enum Digest {
    package static func sha1(_ data: [UInt8]) throws -> [UInt8] { try digest(data, EVP_sha1()) }
    package static func sha256(_ data: [UInt8]) throws -> [UInt8] { try digest(data, EVP_sha256()) }

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
