internal import COpenSSL
import SLMessage
import SLOpenSSL

/// Why a certificate cannot be used to encrypt to a recipient.
public enum CertificateRejection: Equatable, Sendable, CustomStringConvertible {
    case expired, notYetValid
    case untrusted(String)
    case wrongAddress
    case noEmailProtection
    case wrongKeyUsage(String)
    case unsupportedKey

    public var description: String {
        switch self {
        case .expired: return "certificate expired"
        case .notYetValid: return "certificate not yet valid"
        case .untrusted(let why): return "certificate not trusted (\(why))"
        case .wrongAddress: return "certificate is not issued for this address"
        case .noEmailProtection: return "certificate lacks the emailProtection extended key usage"
        case .wrongKeyUsage(let why): return "certificate key usage does not allow encryption (\(why))"
        case .unsupportedKey: return "certificate key is neither RSA nor EC"
        }
    }
}

/// The trust store and the checks a reviewer signs off: a chain to a trusted
/// anchor, dates, key usage fit for encryption (keyEncipherment for RSA,
/// keyAgreement for EC), the emailProtection extended key usage, and the address.
public final class CertificateChecker: @unchecked Sendable {
    let store: OpaquePointer

    /// - Parameters:
    ///   - systemCAs: also trust the system CA bundle (OpenSSL's default paths).
    ///   - anchors: additional trusted certificates (a private CA).
    public init(systemCAs: Bool = true, anchors: [X509Certificate] = []) throws {
        guard let s = X509_STORE_new() else { throw OpenSSLError("cannot create a trust store") }
        store = s
        if systemCAs { _ = X509_STORE_set_default_paths(store) }
        for a in anchors {
            guard X509_STORE_add_cert(store, a.handle) == 1 else { throw OpenSSLError("cannot add a trust anchor") }
        }
    }

    deinit { X509_STORE_free(store) }

    /// Why `cert` cannot be used for `address`, or nil when it can. `intermediates`
    /// are untrusted certificates that may complete the chain.
    public func rejection(of cert: X509Certificate, for address: String, intermediates: [X509Certificate] = []) -> CertificateRejection? {
        if X509_cmp_current_time(X509_get0_notAfter(cert.handle)) < 0 { return .expired }
        if X509_cmp_current_time(X509_get0_notBefore(cert.handle)) > 0 { return .notYetValid }
        let kind = cert.keyKind
        if kind == .other { return .unsupportedKey }
        // X509_get_key_usage answers UINT32_MAX when the extension is absent: any use.
        let ku = X509_get_key_usage(cert.handle)
        if ku != UInt32.max {
            if kind == .rsa && ku & UInt32(KU_KEY_ENCIPHERMENT) == 0 { return .wrongKeyUsage("RSA needs keyEncipherment") }
            if kind == .ec && ku & UInt32(KU_KEY_AGREEMENT) == 0 { return .wrongKeyUsage("EC needs keyAgreement") }
        }
        let xku = X509_get_extended_key_usage(cert.handle)
        if xku != UInt32.max && xku & UInt32(XKU_SMIME) == 0 { return .noEmailProtection }
        // X509_check_email compares the local part exactly; addresses in our books and
        // routing are lowercased, so also try the lowercased form.
        let matches = [address, address.lowercased()].contains { a in
            a.withCString { X509_check_email(cert.handle, $0, 0, 0) } == 1
        }
        if !matches { return .wrongAddress }
        if let why = verifyChain(cert, intermediates) { return .untrusted(why) }
        return nil
    }

    private func verifyChain(_ cert: X509Certificate, _ intermediates: [X509Certificate]) -> String? {
        guard let ctx = X509_STORE_CTX_new() else { return "out of memory" }
        defer { X509_STORE_CTX_free(ctx) }
        let chain = OPENSSL_sk_new_null()
        defer { OPENSSL_sk_free(chain) }
        for i in intermediates { _ = OPENSSL_sk_push(chain, UnsafeRawPointer(i.handle)) }
        guard X509_STORE_CTX_init(ctx, store, cert.handle, chain) == 1 else { return "cannot start verification" }
        // Purpose ANY: X509_PURPOSE_SMIME_ENCRYPT would refuse EC certificates whose key
        // usage is keyAgreement. Key usage and emailProtection are checked above.
        _ = X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_ANY)
        if X509_verify_cert(ctx) == 1 { return nil }
        let code = X509_STORE_CTX_get_error(ctx)
        ERR_clear_error()
        return String(cString: X509_verify_cert_error_string(Int(code)))
    }
}

extension X509Certificate {
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
