// X.509 certificates: recipients' from address books and the command line, the
// sender's own for signing, a server's chain in a TLS handshake. All of them are read
// here, so there is one rule for what counts as a certificate. The bytes come from
// files anyone might have edited and from servers anyone might run.
internal import COpenSSL

/// An X.509 certificate. Owns one reference to its `X509*` and frees it; nothing of
/// OpenSSL reaches a caller outside this package. Sendable because nothing changes
/// it after it is made (OpenSSL locks the caches it fills on a first read).
public final class X509Certificate: @unchecked Sendable {
    /// For the package's other OpenSSL wrappers (CMS, trust stores, TLS); never public.
    package let handle: OpaquePointer

    private init(taking handle: OpaquePointer) { self.handle = handle }

    /// Takes a reference of its own to a certificate something else owns (a server's
    /// chain in a TLS session), so that it may outlive that owner.
    package convenience init(retaining handle: OpaquePointer) {
        X509_up_ref(handle)
        self.init(taking: handle)
    }

    deinit { X509_free(handle) }

    /// Parses exactly one DER certificate; trailing bytes are an error, since they mean
    /// the data is not what it claims to be.
    public convenience init(der: [UInt8]) throws {
        guard !der.isEmpty, der.count <= Int(Int32.max) else {
            throw OpenSSLError(plain: "certificate data is empty or too large")
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
            throw OpenSSLError(plain: "not a DER X.509 certificate (truncated or garbage)")
        }
        self.init(taking: parsed)
        guard consumed == der.count else {
            throw OpenSSLError(plain: "certificate has \(der.count - consumed) unexpected trailing octets")
        }
    }

    /// Parses the first certificate in PEM text. Text before it (`openssl x509 -text`
    /// prints the certificate above the block) is skipped; later certificates (a chain
    /// pasted along) are ignored: the first is the holder's own by convention, and a CA
    /// certificate must never become a recipient key.
    public convenience init(pem: [UInt8]) throws {
        self.init(taking: try Self.readPEM(pem, atMost: 1)[0])
    }

    /// DER when the data starts as DER does (an ASN.1 SEQUENCE, 0x30), PEM otherwise.
    public convenience init(derOrPEM data: [UInt8]) throws {
        if Self.looksLikeDER(data) { try self.init(der: data) } else { try self.init(pem: data) }
    }

    /// Every certificate in a PEM bundle (a chain, a CA bundle), or the one DER
    /// certificate.
    public static func all(derOrPEM data: [UInt8]) throws -> [X509Certificate] {
        if looksLikeDER(data) { return [try X509Certificate(der: data)] }
        return try readPEM(data, atMost: .max).map(X509Certificate.init(taking:))
    }

    private static func looksLikeDER(_ data: [UInt8]) -> Bool { data.first == 0x30 }

    /// Up to `limit` certificates, at least one, each an `X509*` the caller must own
    /// at once (nothing can throw between here and there).
    private static func readPEM(_ pem: [UInt8], atMost limit: Int) throws -> [OpaquePointer] {
        guard !pem.isEmpty, pem.count <= Int(Int32.max) else {
            throw OpenSSLError(plain: "PEM data is empty or too large")
        }
        var found: [OpaquePointer] = []
        pem.withUnsafeBytes { buffer in
            guard let bio = MemoryBIO(reading: buffer) else { return }
            while found.count < limit, let x = PEM_read_bio_X509(bio.handle, nil, nil, nil) { found.append(x) }
        }
        // Reading ends on "no start line" at the end of the data, which is not an
        // error; the queue is emptied either way.
        guard !found.isEmpty else {
            throw OpenSSLError(plain: "no readable -----BEGIN CERTIFICATE----- block in the PEM data")
        }
        ERR_clear_error()
        return found
    }

    /// The DER encoding (OpenSSL keeps the encoding it parsed, so this is the input).
    public func der() throws -> [UInt8] {
        let length = i2d_X509(handle, nil)
        guard length > 0 else { throw OpenSSLError("cannot encode the certificate") }
        var out = [UInt8](repeating: 0, count: Int(length))
        let written = out.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor = buffer.baseAddress
            return i2d_X509(handle, &cursor)
        }
        guard written == length else { throw OpenSSLError("cannot encode the certificate") }
        return out
    }

    /// SHA-256 over the DER encoding: the fingerprint certificates are named by.
    public func sha256Fingerprint() throws -> [UInt8] {
        try Digest.sha256(der())
    }

    /// subjectAltName rfc822Name entries and subject emailAddress, lowercased, each once.
    public var emailAddresses: [String] {
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

    /// The subject as RFC 2253 text ("CN=mx.example.org,O=Example"). Whoever made the
    /// certificate chose it: filter it before printing it.
    public var subject: String { Self.rfc2253(X509_get_subject_name(handle)) }

    /// The issuer as RFC 2253 text, as untrusted as `subject`.
    public var issuer: String { Self.rfc2253(X509_get_issuer_name(handle)) }

    /// Start of validity, RFC 3339 in UTC ("2026-01-31T23:59:59Z"); empty if unreadable.
    public var notBefore: String { Self.rfc3339(X509_get0_notBefore(handle)) }

    /// End of validity, like `notBefore`.
    public var notAfter: String { Self.rfc3339(X509_get0_notAfter(handle)) }

    private static func rfc2253(_ name: OpaquePointer?) -> String {
        guard let name, let bio = MemoryBIO() else { return "" }
        X509_NAME_print_ex(bio.handle, name, 0, sl_xn_flag_rfc2253())
        return String(decoding: bio.contents, as: UTF8.self)
    }

    private static func rfc3339(_ time: UnsafePointer<ASN1_TIME>?) -> String {
        var t = tm()
        guard let time, ASN1_TIME_to_tm(time, &t) == 1 else { return "" }
        func digits(_ value: Int32, _ width: Int) -> String {
            let s = String(value)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(digits(t.tm_year + 1900, 4))-\(digits(t.tm_mon + 1, 2))-\(digits(t.tm_mday, 2))"
            + "T\(digits(t.tm_hour, 2)):\(digits(t.tm_min, 2)):\(digits(t.tm_sec, 2))Z"
    }
}
