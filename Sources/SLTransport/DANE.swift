internal import COpenSSL
internal import SLOpenSSL
import Foundation
import SLPolicy

/// The TLSA records a session must match, and the name they were published for
/// (the TLSA base domain: the MX host name, RFC 7672 2.2.3).
public struct DANEAuthentication: Sendable, Equatable {
    public var baseDomain: String
    public var records: [TLSARecord]
}

/// The TLSA record a server's chain matched, as the evidence shows it.
public struct DANEMatch: Codable, Sendable, Equatable {
    public var usage: UInt8
    public var selector: UInt8
    public var matchingType: UInt8
    /// The first octets of the association data, in hex (what `dig TLSA` shows).
    public var digest: String
    /// Depth in the chain of the certificate that matched (0: the server's own).
    public var depth: Int

    /// "3 1 1 4a5b6c7d…".
    public var summary: String {
        TLSARecord(usage: usage, selector: selector, matchingType: matchingType, data: []).summary + digest + "…"
    }
}

/// What RFC 7672 asks of the TLS to one MX host. Sending and probing take it from
/// the same lookup (`DANEPolicy.forHost`) and judge a handshake by the same rule
/// (`judge`), so that sl-deliver enforces what sl-tls-probe reported.
public enum DANEPolicy: Sendable, Equatable {
    /// DANE does not apply (no trusted resolver, an insecure MX or address RRset, no
    /// validated TLSA records): the WebPKI rule decides. The text says why.
    case notApplicable(String)
    /// Usable DANE-TA/DANE-EE records: TLS is mandatory and must match one of them.
    case authenticate(DANEAuthentication)
    /// A validated TLSA RRset without a usable record (RFC 7672 3.1.3): TLS is
    /// mandatory but cannot be authenticated.
    case encryptOnly(String)
    /// The TLSA lookup failed (bogus, SERVFAIL, timeout): the host must not be used
    /// for mail, since an attacker may be hiding its records (RFC 7672 2.2).
    case lookupFailed(String)

    /// The policy for `host`, whose addresses were found `addressesSecure`.
    public static func forHost(_ host: MailHost, addressesSecure: Bool, resolver: DNSResolver) -> DANEPolicy {
        guard resolver.validating else {
            return .notApplicable("no trusted DNSSEC resolver (dnssec_resolver); DANE not checked")
        }
        guard !NextHop.isAddress(host.name) else { return .notApplicable("an address literal has no TLSA records") }
        guard host.secure else { return .notApplicable("the MX records are not DNSSEC-validated") }
        guard addressesSecure else { return .notApplicable("the address records of \(host.name) are not DNSSEC-validated") }
        switch resolver.tlsa(host: host.name, port: host.port) {
        case .absent(let why): return .notApplicable(why)
        case .failed(let why): return .lookupFailed(why)
        case .secure(let records): return policy(host: host.name, records: records)
        }
    }

    /// The policy for a validated TLSA RRset.
    public static func policy(host: String, records: [TLSARecord]) -> DANEPolicy {
        let usable = records.filter(\.isUsableForSMTP)
        guard !usable.isEmpty else {
            return .encryptOnly("\(records.count) validated TLSA record\(records.count == 1 ? "" : "s"), none usable for SMTP (RFC 7672 3.1.3): TLS is mandatory, without authentication")
        }
        return .authenticate(DANEAuthentication(baseDomain: host, records: usable))
    }

    /// TLS may not be skipped: with any validated TLSA RRset, and with a failed
    /// lookup (the host is not used at all), plaintext is out even for mail that
    /// asked only for opportunistic TLS — Postfix's `dane` level.
    public var forbidsPlaintext: Bool {
        if case .notApplicable = self { return false }
        return true
    }

    /// The records to hand to the TLS session, if any.
    public var authentication: DANEAuthentication? {
        if case .authenticate(let a) = self { return a }
        return nil
    }

    /// The verdict this policy gives a completed handshake; nil when DANE does
    /// not apply and the WebPKI rule decides.
    public func judge(_ tls: TLSDetails) -> (verdict: TLSVerdict, result: TLSResultType?, reason: String?)? {
        switch self {
        case .notApplicable:
            return nil
        case .lookupFailed(let why):
            return (.none, .dnssecInvalid, why)
        case .encryptOnly(let why):
            return (.encrypted, .tlsaInvalid, why)
        case .authenticate:
            guard tls.verified, tls.dane != nil else {
                return (.none, tls.failure ?? .tlsaInvalid,
                        "DANE: the certificate does not match the TLSA records (\(tls.failureDetail ?? "no match"))")
            }
            guard tls.modernProtocol else {
                return (.encrypted, .validationFailure, "\(tls.protocolVersion) is older than TLS 1.2")
            }
            return (.dane, nil, nil)
        }
    }

    /// The evidence for sl-tls-probe --json and the TLS cache.
    public var evidence: DANEEvidence {
        switch self {
        case .notApplicable(let why):
            return DANEEvidence(policy: "not-applicable", secure: false, tlsa: [], note: why)
        case .authenticate(let a):
            return DANEEvidence(policy: "authenticate", secure: true, tlsa: a.records.map(\.summary), note: nil)
        case .encryptOnly(let why):
            return DANEEvidence(policy: "encrypt-only", secure: true, tlsa: [], note: why)
        case .lookupFailed(let why):
            return DANEEvidence(policy: "tlsa-lookup-failed", secure: false, tlsa: [], note: why)
        }
    }
}

/// What the probe learnt about DANE for one host (sl-tls-probe --json `dane`).
public struct DANEEvidence: Codable, Sendable, Equatable {
    /// `authenticate`, `encrypt-only`, `tlsa-lookup-failed` or `not-applicable`.
    public var policy: String
    /// The TLSA RRset came from a DNSSEC-validated answer of the trusted resolver.
    public var secure: Bool
    /// The usable TLSA records, as "usage selector mtype digest-prefix".
    public var tlsa: [String]
    /// Why DANE does not apply, or what the lookup said.
    public var note: String?
}

extension TLSSession {
    /// DANE on this session (RFC 7671, RFC 7672 3): SSL_dane_enable with the TLSA
    /// base domain as SNI and reference identifier, names checked for DANE-TA(2)
    /// only, full-label wildcards only (set by the caller), then the records.
    /// OpenSSL refuses records it cannot use (returns 0); those are skipped.
    func enableDANE(_ dane: DANEAuthentication) throws {
        guard SSL_dane_enable(ssl, dane.baseDomain) > 0 else {
            throw TransportError.tls(OpenSSLError("cannot enable DANE for \(dane.baseDomain)").description)
        }
        // DANE-EE(3) binds the key itself: names and dates do not matter (RFC 7672 3.1.1).
        _ = SSL_dane_set_flags(ssl, sl_dane_flag_no_ee_namechecks())
        var added = 0
        for r in dane.records {
            let rc = r.data.withUnsafeBufferPointer { d in
                SSL_dane_tlsa_add(ssl, r.usage, r.selector, r.matchingType, d.baseAddress, d.count)
            }
            if rc > 0 { added += 1 } else if rc < 0 {
                throw TransportError.tls(OpenSSLError("cannot add TLSA record \(r.summary)").description)
            }
        }
        daneEnabled = added > 0
        ERR_clear_error()
    }

    /// The TLSA record that authenticated the peer, if one did.
    func matchedTLSA() -> DANEMatch? {
        var mcert: OpaquePointer? = nil
        var mspki: OpaquePointer? = nil
        guard SSL_get0_dane_authority(ssl, &mcert, &mspki) >= 0 else { return nil }
        var usage: UInt8 = 0, selector: UInt8 = 0, mtype: UInt8 = 0
        var data: UnsafePointer<UInt8>? = nil
        var length = 0
        let depth = SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, &data, &length)
        guard depth >= 0, let data else { return nil }
        let prefix = UnsafeBufferPointer(start: data, count: min(length, 8)).map { String(format: "%02x", $0) }.joined()
        return DANEMatch(usage: usage, selector: selector, matchingType: mtype, digest: prefix, depth: Int(depth))
    }
}
