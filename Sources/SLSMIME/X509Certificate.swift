import COpenSSL
import SLMessage

/// An X.509 certificate. Owns its `X509*` and frees it; nothing of OpenSSL escapes.
public final class X509Certificate: @unchecked Sendable {
    let handle: OpaquePointer

    /// Parses DER, or PEM (the first certificate of a PEM file).
    public init(derOrPEM bytes: Bytes) throws {
        let pem = bytes.starts(with: Array("-----BEGIN".utf8))
        let parsed: OpaquePointer? = bytes.withUnsafeBufferPointer { buf -> OpaquePointer? in
            if pem {
                guard let bio = BIO_new_mem_buf(buf.baseAddress, Int32(buf.count)) else { return nil }
                defer { BIO_free(bio) }
                return PEM_read_bio_X509(bio, nil, nil, nil)
            }
            var p: UnsafePointer<UInt8>? = buf.baseAddress
            return d2i_X509(nil, &p, buf.count)
        }
        guard let parsed else { throw SMIMEError("not a certificate") }
        handle = parsed
    }

    private init(taking handle: OpaquePointer) { self.handle = handle }

    /// Every certificate in a PEM bundle (a chain, a CA bundle), or the one DER
    /// certificate.
    public static func all(derOrPEM bytes: Bytes) throws -> [X509Certificate] {
        guard bytes.starts(with: Array("-----BEGIN".utf8)) else { return [try X509Certificate(derOrPEM: bytes)] }
        var out: [X509Certificate] = []
        bytes.withUnsafeBufferPointer { buf in
            guard let bio = BIO_new_mem_buf(buf.baseAddress, Int32(buf.count)) else { return }
            defer { BIO_free(bio) }
            while let x = PEM_read_bio_X509(bio, nil, nil, nil) { out.append(X509Certificate(taking: x)) }
        }
        ERR_clear_error()      // the loop ends on "no start line": not an error
        guard !out.isEmpty else { throw SMIMEError(plain: "no certificate in the PEM data") }
        return out
    }

    deinit { X509_free(handle) }

    /// The DER encoding.
    public var der: Bytes {
        let n = i2d_X509(handle, nil)
        guard n > 0 else { return [] }
        var out = Bytes(repeating: 0, count: Int(n))
        out.withUnsafeMutableBufferPointer { buf in
            var p: UnsafeMutablePointer<UInt8>? = buf.baseAddress
            _ = i2d_X509(handle, &p)
        }
        return out
    }

    /// Public key algorithm, as far as the S/MIME rules care.
    public enum KeyKind: Sendable { case rsa, ec, other }

    public var keyKind: KeyKind {
        guard let key = X509_get0_pubkey(handle) else { return .other }
        switch EVP_PKEY_get_base_id(key) {
        case EVP_PKEY_RSA: return .rsa
        case EVP_PKEY_EC: return .ec
        default: return .other
        }
    }
}
