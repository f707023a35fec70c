internal import CResolv
import Foundation

/// One TLSA record (RFC 6698 2.1): certificate usage, selector, matching type and
/// the association data. Parsed from rdata the zone owner (or an attacker, until
/// DNSSEC says otherwise) wrote; nothing here trusts a length it did not check.
public struct TLSARecord: Sendable, Equatable, Codable {
    public var usage: UInt8
    public var selector: UInt8
    public var matchingType: UInt8
    public var data: [UInt8]

    /// RFC 7218 acronyms for the usages.
    public enum Usage: UInt8 { case pkixTA = 0, pkixEE = 1, daneTA = 2, daneEE = 3 }

    public init(usage: UInt8, selector: UInt8, matchingType: UInt8, data: [UInt8]) {
        self.usage = usage; self.selector = selector; self.matchingType = matchingType; self.data = data
    }

    /// The wire form: three octets, then at least one octet of data.
    public init(rdata: [UInt8]) throws {
        guard rdata.count >= 4 else {
            throw DNSError.invalid("malformed TLSA record (\(rdata.count) octets; at least 4 needed)")
        }
        self.init(usage: rdata[0], selector: rdata[1], matchingType: rdata[2], data: Array(rdata[3...]))
    }

    /// Longest full (matching type 0) association we hand to OpenSSL: a
    /// certificate or key of 16 KiB is far beyond any real one.
    static let maximumFullData = 16_384

    /// Usable for SMTP (RFC 7672 3.1.3): DANE-TA(2) or DANE-EE(3) — PKIX-TA(0) and
    /// PKIX-EE(1) are not, since MX hosts need no WebPKI certificate — with a
    /// known selector and a matching type whose data has the right length.
    /// Unusable records are ignored, as RFC 7671 4.1 says, never an error.
    public var isUsableForSMTP: Bool {
        guard usage == Usage.daneTA.rawValue || usage == Usage.daneEE.rawValue, selector <= 1 else { return false }
        switch matchingType {
        case 0: return !data.isEmpty && data.count <= Self.maximumFullData
        case 1: return data.count == 32
        case 2: return data.count == 64
        default: return false
        }
    }

    /// "3 1 1 4a5b6c7d…": the parameters and the first octets of the data, as an
    /// administrator compares them with `dig TLSA`.
    public var summary: String {
        "\(usage) \(selector) \(matchingType) " + data.prefix(8).map { String(format: "%02x", $0) }.joined()
            + (data.count > 8 ? "…" : "")
    }
}

/// What a TLSA lookup for one MX host found (RFC 7672 2.2).
public enum TLSALookup: Sendable, Equatable {
    /// The records, from a validated answer.
    case secure([TLSARecord])
    /// No TLSA records at the name (NODATA or NXDOMAIN), or records from an answer
    /// that was not validated: DANE does not apply.
    case absent(String)
    /// The lookup failed: SERVFAIL (what a validating resolver says for bogus
    /// data), a timeout, or a malformed answer. RFC 7672 2.2: the host must not be
    /// used for mail that needs authenticated TLS.
    case failed(String)
}

extension DNSResolver {
    /// The TLSA owner name for an SMTP server (RFC 6698 3): `_PORT._tcp.HOST`.
    public static func tlsaName(host: String, port: UInt16) -> String { "_\(port)._tcp.\(host)" }

    /// The TLSA RRset of `host`:`port`, judged by RFC 7672 2.2.
    public func tlsa(host: String, port: UInt16) -> TLSALookup {
        let name = Self.tlsaName(host: host, port: port)
        let answer: DNSAnswer
        do {
            answer = try lookup(name, type: ns_t_tlsa)
        } catch DNSError.noSuchDomain {
            return .absent("no TLSA records at \(name) (NXDOMAIN)")
        } catch {
            return .failed("TLSA lookup for \(name) failed: \(error)")
        }
        guard let records = answer.records else { return .absent("no TLSA records at \(name)") }
        guard answer.authenticated else { return .absent("TLSA records at \(name) are not DNSSEC-validated") }
        return Self.tlsaRecords(records.map(\.rdata), name: name)
    }

    /// The records of a validated RRset. A record too short to parse is "malformed
    /// and unusable" (RFC 7671 4.1) like any other unusable one: it is kept out,
    /// but the RRset still counts as present.
    static func tlsaRecords(_ rdatas: [[UInt8]], name: String) -> TLSALookup {
        .secure(rdatas.compactMap { try? TLSARecord(rdata: $0) })
    }
}
