// X.509 certificates from address books, read with OpenSSL. The C handles live in
// owning classes that free them in deinit, so no early return can leak one, and no
// OpenSSL type leaves this file.
import COpenSSL
import SLMessage

/// Owns an `X509*`.
final class X509Certificate {
    let handle: OpaquePointer

    private init(handle: OpaquePointer) { self.handle = handle }
    deinit { X509_free(handle) }

    /// Parses exactly one DER certificate; trailing bytes are an error, since they mean
    /// the data is not what it claims to be.
    convenience init(der: [UInt8]) throws {
        defer { ERR_clear_error() }  // failures must not linger in the thread's error queue
        guard !der.isEmpty, der.count <= Int(Int32.max) else {
            throw KeyMaterialError("certificate data is empty or too large")
        }
        var consumed = 0
        let parsed: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return nil }
            var cursor: UnsafePointer<UInt8>? = base
            let x = d2i_X509(nil, &cursor, buffer.count)
            if let cursor { consumed = cursor - base }
            return x
        }
        guard let parsed else {
            throw KeyMaterialError("not a DER X.509 certificate (truncated or garbage)")
        }
        self.init(handle: parsed)
        guard consumed == der.count else {
            throw KeyMaterialError("certificate has \(der.count - consumed) unexpected trailing octets")
        }
    }

    /// Parses the first certificate in PEM text. Later certificates (a chain pasted
    /// along) are ignored: the first is the holder's own by convention, and a CA
    /// certificate must never become a recipient key.
    convenience init(pem: [UInt8]) throws {
        defer { ERR_clear_error() }
        guard !pem.isEmpty, pem.count <= Int(Int32.max) else {
            throw KeyMaterialError("PEM data is empty or too large")
        }
        let parsed: OpaquePointer? = pem.withUnsafeBytes { buffer in
            guard let bio = MemoryBIO(buffer) else { return nil }
            return PEM_read_bio_X509(bio.handle, nil, nil, nil)
        }
        guard let parsed else {
            throw KeyMaterialError("no readable -----BEGIN CERTIFICATE----- block in the PEM data")
        }
        self.init(handle: parsed)
    }

    /// The DER encoding (OpenSSL keeps the encoding it parsed, so this is the input).
    func der() throws -> [UInt8] {
        let length = i2d_X509(handle, nil)
        guard length > 0 else { ERR_clear_error(); throw KeyMaterialError("cannot encode certificate") }
        var out = [UInt8](repeating: 0, count: Int(length))
        let written = out.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor = buffer.baseAddress
            return i2d_X509(handle, &cursor)
        }
        guard written == length else { ERR_clear_error(); throw KeyMaterialError("cannot encode certificate") }
        return out
    }

    /// subjectAltName rfc822Name entries and subject emailAddress, lowercased.
    func emailAddresses() -> [String] {
        guard let stack = X509_get1_email(handle) else { return [] }
        defer { X509_email_free(stack) }
        var result: [String] = []
        for k in 0..<max(0, OPENSSL_sk_num(stack)) {
            guard let raw = OPENSSL_sk_value(stack, k) else { continue }
            let address = String(cString: raw.assumingMemoryBound(to: CChar.self)).lowercased()
            if !result.contains(address) { result.append(address) }
        }
        return result
    }
}

/// Owns a read-only memory `BIO*` over a caller's buffer, valid while that buffer is.
private final class MemoryBIO {
    let handle: OpaquePointer
    init?(_ buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, let bio = BIO_new_mem_buf(base, Int32(buffer.count)) else { return nil }
        handle = bio
    }
    deinit { BIO_free(handle) }
}
