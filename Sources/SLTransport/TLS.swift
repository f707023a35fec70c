internal import COpenSSL
import Foundation
internal import SLOpenSSL

/// The local TLS set-up is unusable (a CA bundle that does not load): a
/// configuration problem, not the server's.
public struct TLSSetupError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

/// Certificate verification failures in RFC 8460 (SMTP TLS reporting) result types.
public enum TLSResultType: String, Codable, Sendable {
    case starttlsNotSupported = "starttls-not-supported"
    case certificateHostMismatch = "certificate-host-mismatch"
    case certificateExpired = "certificate-expired"
    case certificateNotTrusted = "certificate-not-trusted"
    case validationFailure = "validation-failure"
    // MTA-STS (RFC 8460 4.3.2): no policy could be fetched, read, or trusted.
    case stsPolicyFetchError = "sts-policy-fetch-error"
    case stsPolicyInvalid = "sts-policy-invalid"
    case stsWebPKIInvalid = "sts-webpki-invalid"
    /// DANE: none of the host's usable TLSA records matched (or none was usable).
    case tlsaInvalid = "tlsa-invalid"
    /// DANE: the TLSA lookup failed (SERVFAIL from the validating resolver: bogus
    /// data, or no answer).
    case dnssecInvalid = "dnssec-invalid"
    /// DANE was required (tls_min_verdict = dane) but the host has no validated
    /// TLSA records: named in the reply of the copy sl-deliver re-routes.
    case daneRequired = "dane-required"
}

/// What a client needs for every TLS connection: trust anchors and protocol floor.
/// Shared by all connections of a run (an SSL_CTX may be used from several threads).
public final class TLSClientContext: @unchecked Sendable {
    let ctx: OpaquePointer

    /// TLS 1.2 at least and OpenSSL's default security level: a server that offers
    /// less does not get a session, so nothing weaker can come out "verified".
    /// - Parameter caFile: PEM bundle of trust anchors; nil means the system CA store.
    public init(caFile: String?) throws {
        guard let c = SSL_CTX_new(TLS_client_method()) else {
            throw TransportError.tls(OpenSSLError("cannot create a TLS context").description)
        }
        ctx = c
        // The handshake completes whatever the certificate says; the verdict comes from
        // SSL_get_verify_result afterwards, so that a probe can say *why* it failed and
        // delivery can refuse with that reason.
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nil)
        _ = sl_ssl_ctx_set_min_proto(c, TLS1_2_VERSION)
        // Lets a session match TLSA records (DANE); a session without records
        // added verifies by WebPKI exactly as before.
        guard SSL_CTX_dane_enable(c) > 0 else {
            throw TransportError.tls(OpenSSLError("cannot enable DANE in the TLS context").description)
        }
        if let caFile {
            // No SSL_CTX_free on these paths: ctx is set, so deinit frees it.
            guard SSL_CTX_load_verify_locations(c, caFile, nil) == 1 else {
                throw TLSSetupError(OpenSSLError("cannot load the CA bundle \(caFile)").description)
            }
        } else {
            guard SSL_CTX_set_default_verify_paths(c) == 1 else {
                throw TLSSetupError(OpenSSLError("cannot load the system CA store").description)
            }
        }
    }

    deinit { SSL_CTX_free(ctx) }
}

/// One certificate, as much as an administrator wants to see of it.
public struct CertificateSummary: Codable, Sendable, Equatable {
    public var subject: String
    public var issuer: String
    public var notBefore: String
    public var notAfter: String
    public var sha256: String
}

/// What a TLS handshake produced.
public struct TLSDetails: Codable, Sendable, Equatable {
    /// "TLSv1.3", "TLSv1.2", ...
    public var protocolVersion: String
    public var cipher: String
    /// True when the protocol is TLS 1.2 or later.
    public var modernProtocol: Bool
    /// True when the chain verifies to a trust anchor and the certificate names the host.
    public var verified: Bool
    /// Why verification failed (nil when verified).
    public var failure: TLSResultType?
    /// OpenSSL's words for the failure.
    public var failureDetail: String?
    /// The server's chain, leaf first, as sent.
    public var chain: [CertificateSummary]
    /// The TLSA record the chain matched, when the session authenticated by DANE.
    public var dane: DANEMatch?
}

/// A TLS session over a connected, non-blocking socket. Owns the SSL object, not
/// the descriptor.
final class TLSSession {
    let ssl: OpaquePointer

    /// True when TLSA records were added: the verify result is DANE's, not WebPKI's.
    var daneEnabled = false

    init(context: TLSClientContext, fd: Int32, serverName: String, verifyName: String, dane: DANEAuthentication? = nil) throws {
        guard let s = SSL_new(context.ctx) else { throw TransportError.tls(OpenSSLError("cannot create a TLS session").description) }
        ssl = s
        if let dane { try enableDANE(dane) }
        // SNI takes a host name, never an address literal.
        if DNSResolver.isHostName(serverName), !DNSServer.isIPv4(serverName) {
            _ = sl_ssl_set_sni(s, serverName)
        }
        SSL_set_hostflags(s, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
        // With DANE, SSL_dane_enable already named the TLSA base domain (RFC 7672
        // 3.2.3); setting the name again here would drop nothing but add nothing.
        guard daneEnabled || SSL_set1_host(s, verifyName) == 1, SSL_set_fd(s, fd) == 1 else {
            throw TransportError.tls(OpenSSLError("cannot set up the TLS session").description)
        }
    }

    deinit { SSL_free(ssl) }

    /// Runs `op` until it stops asking to wait, polling the socket until `deadline`.
    func drive(_ what: String, fd: Int32, deadline: Deadline, _ op: () -> Int32) throws -> Int32 {
        while true {
            ERR_clear_error()
            let r = op()
            if r > 0 { return r }
            let e = SSL_get_error(ssl, r)
            switch e {
            case SSL_ERROR_WANT_READ: try Socket.wait(fd, for: Int16(POLLIN), until: deadline, doing: what)
            case SSL_ERROR_WANT_WRITE: try Socket.wait(fd, for: Int16(POLLOUT), until: deadline, doing: what)
            case SSL_ERROR_ZERO_RETURN: return 0
            case SSL_ERROR_SYSCALL where ERR_peek_error() == 0:
                throw TransportError.closed("the server closed the connection during \(what)")
            default:
                throw TransportError.tls(OpenSSLError("TLS \(what) failed").description)
            }
        }
    }

    func handshake(fd: Int32, deadline: Deadline) throws -> TLSDetails {
        _ = try drive("handshake", fd: fd, deadline: deadline) { SSL_connect(ssl) }
        let version = String(cString: SSL_get_version(ssl))
        let cipher = SSL_get_current_cipher(ssl).map { String(cString: SSL_CIPHER_get_name($0)) } ?? "unknown"
        let modern = SSL_version(ssl) >= TLS1_2_VERSION
        var chain: [CertificateSummary] = []
        for i in 0..<sl_peer_chain_count(ssl) {
            if let x = sl_peer_chain_at(ssl, i) { chain.append(CertificateSummary(X509Certificate(retaining: x))) }
        }
        var code = chain.isEmpty ? Int(X509_V_ERR_UNSPECIFIED) : SSL_get_verify_result(ssl)
        let daneMatch = daneEnabled ? matchedTLSA() : nil
        // With TLSA records in play only a DANE match authenticates; OpenSSL says
        // X509_V_OK for nothing else, but that is checked rather than assumed.
        if daneEnabled && code == X509_V_OK && daneMatch == nil { code = Int(X509_V_ERR_DANE_NO_MATCH) }
        let failure: TLSResultType? = code == X509_V_OK ? nil : Self.resultType(Int32(code))
        let detail = code == X509_V_OK ? nil
            : (chain.isEmpty ? "no certificate" : String(cString: X509_verify_cert_error_string(code)))
        return TLSDetails(protocolVersion: version, cipher: cipher, modernProtocol: modern,
                          verified: failure == nil, failure: failure, failureDetail: detail, chain: chain,
                          dane: daneMatch)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, fd: Int32, deadline: Deadline) throws -> Int {
        var n = 0
        _ = try drive("read", fd: fd, deadline: deadline) {
            SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &n)
        }
        return n
    }

    func write(_ bytes: UnsafeRawBufferPointer, fd: Int32, deadline: Deadline) throws {
        var done = 0
        while done < bytes.count {
            var n = 0
            let r = try drive("write", fd: fd, deadline: deadline) {
                SSL_write_ex(ssl, bytes.baseAddress! + done, bytes.count - done, &n)
            }
            if r == 0 { throw TransportError.closed("the server closed the TLS session") }
            done += n
        }
    }

    /// Sends close_notify without waiting for the answer.
    func shutdown() { ERR_clear_error(); _ = SSL_shutdown(ssl); ERR_clear_error() }

    static func resultType(_ code: Int32) -> TLSResultType {
        switch code {
        case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH:
            return .certificateHostMismatch
        case X509_V_ERR_DANE_NO_MATCH:
            return .tlsaInvalid
        case X509_V_ERR_CERT_HAS_EXPIRED, X509_V_ERR_CERT_NOT_YET_VALID:
            return .certificateExpired
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
             X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
             X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_CERT_UNTRUSTED:
            return .certificateNotTrusted
        default:
            return .validationFailure
        }
    }
}

extension CertificateSummary {
    /// Names through `printable`: the server's certificate says what it likes.
    init(_ certificate: X509Certificate) {
        subject = printable(certificate.subject.utf8)
        issuer = printable(certificate.issuer.utf8)
        notBefore = certificate.notBefore
        notAfter = certificate.notAfter
        sha256 = ((try? certificate.sha256Fingerprint()) ?? []).map { String(format: "%02X", $0) }.joined(separator: ":")
    }
}

/// Text from the network made safe to print or log: control and non-ASCII bytes
/// become "?", so a hostile server cannot write escape sequences or fake lines.
func printable(_ bytes: some Sequence<UInt8>) -> String {
    String(decoding: bytes.map { ($0 >= 0x20 && $0 < 0x7F) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
}
