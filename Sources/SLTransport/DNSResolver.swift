internal import CResolv
import Foundation

/// Why a DNS question got no usable answer. The probe turns these into verdicts;
/// sl-deliver into temporary or permanent failures.
public enum DNSError: Error, Equatable, CustomStringConvertible {
    /// NXDOMAIN: the name does not exist (permanent).
    case noSuchDomain(String)
    /// No answer in time, or SERVFAIL (temporary).
    case temporary(String)
    /// A name that is not a host name, or an answer that cannot be parsed.
    case invalid(String)

    public var description: String {
        switch self {
        case .noSuchDomain(let d): return "\(d): no such domain"
        case .temporary(let d): return "\(d): DNS lookup failed temporarily (timeout or server failure)"
        case .invalid(let why): return why
        }
    }
}

/// One MX record.
public struct MXHost: Sendable, Equatable, Codable {
    public var preference: Int
    public var name: String
    public init(preference: Int, name: String) { self.preference = preference; self.name = name }
}

/// Where mail for a domain goes, per RFC 5321 section 5.1 and RFC 7505.
public enum MXAnswer: Sendable, Equatable {
    /// MX hosts, sorted by preference (ties in answer order).
    case hosts([MXHost])
    /// No MX records: the domain itself is the mail host (the implicit MX rule).
    case implicit
    /// A single "MX 0 ." record: the domain accepts no mail.
    case nullMX
}

/// The DNS server to ask instead of /etc/resolv.conf's (`dns_server`, `--dns`).
public struct DNSServer: Sendable, Equatable {
    public var address: String
    public var port: UInt16

    /// Parses `HOST:PORT` or `HOST` (port 53); HOST is an IPv4 address, because that
    /// is what glibc's resolver state can hold without reaching into its internals.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let host = parts.first, Self.isIPv4(String(host)) else {
            throw DNSError.invalid("DNS server \"\(text)\" is not IPV4-ADDRESS[:PORT]")
        }
        address = String(host)
        if parts.count == 2 {
            guard let p = UInt16(parts[1]), p > 0 else { throw DNSError.invalid("DNS server \"\(text)\": bad port") }
            port = p
        } else {
            port = 53
        }
    }

    static func isIPv4(_ s: String) -> Bool {
        var a = in_addr()
        return inet_pton(AF_INET, s, &a) == 1
    }
}

/// A stub resolver over glibc's libresolv. One instance per thread: the resolver
/// state it owns is not shared.
public final class DNSResolver {
    private let state: res_state
    /// True for the validating resolver the administrator named (`dnssec_resolver`):
    /// only its AD bit means "DNSSEC-secure"; any other resolver's is ignored.
    public let validating: Bool

    /// - Parameters:
    ///   - server: ask this server instead of the ones in /etc/resolv.conf.
    ///   - timeout: seconds per attempt; `attempts` tries in all.
    ///   - validating: `server` is a trusted validating resolver: ask with the DO
    ///     bit and believe the AD bit of its answers (RFC 7672 needs both).
    public init(server: DNSServer? = nil, timeout: Int = 5, attempts: Int = 2, validating: Bool = false) throws {
        guard let s = sl_res_new() else { throw DNSError.invalid("out of memory for the resolver") }
        guard sl_res_ninit(s) == 0 else {
            free(s)
            throw DNSError.invalid("cannot initialise the resolver (/etc/resolv.conf)")
        }
        if let server {
            var a = in_addr()
            _ = inet_pton(AF_INET, server.address, &a)
            sl_res_set_server(s, a, server.port)
        }
        sl_res_set_timeout(s, Int32(max(1, timeout)), Int32(max(1, attempts)))
        if validating { sl_res_set_dnssec(s) }
        self.validating = validating
        state = s
    }

    deinit {
        sl_res_nclose(state)
        free(state)
    }

    /// The mail hosts for `domain` (RFC 5321 5.1): MX records in preference order;
    /// `.implicit` when the name exists without MX records; `.nullMX` per RFC 7505.
    public func mx(_ domain: String) throws -> MXAnswer { try securedMX(domain).answer }

    /// `mx(_:)`, and whether the answer (or, for an implicit MX, the denial) was
    /// validated by the trusted resolver: RFC 7672 2.2.1's "secure MX RRset".
    public func securedMX(_ domain: String) throws -> (answer: MXAnswer, secure: Bool) {
        let answer = try lookup(domain, type: ns_t_mx)
        return (try mxAnswer(domain, answer.records), answer.authenticated)
    }

    func mxAnswer(_ domain: String, _ records: [Record]?) throws -> MXAnswer {
        guard let records else { return .implicit }
        var hosts: [(Int, Int, MXHost)] = []
        for (i, r) in records.enumerated() {
            guard r.rdata.count >= 3 else { throw DNSError.invalid("\(domain): malformed MX record") }
            let pref = Int(r.rdata[0]) << 8 | Int(r.rdata[1])
            let name = try r.expandName(at: r.rdataOffset + 2)
            hosts.append((pref, i, MXHost(preference: pref, name: name)))
        }
        // RFC 7505: a domain that takes no mail publishes exactly one MX, target ".".
        // A "." beside real hosts is a misconfiguration: skip it, use the others.
        if hosts.count == 1, hosts[0].2.name.isEmpty { return .nullMX }
        hosts.removeAll { $0.2.name.isEmpty }
        if hosts.isEmpty { return .implicit }
        for h in hosts where !Self.isHostName(h.2.name) {
            throw DNSError.invalid("\(domain): MX target \"\(h.2.name.prefix(80))\" is not a host name")
        }
        return .hosts(hosts.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map(\.2))
    }

    /// IPv4 then IPv6 addresses of `host`, as text. Empty when the name exists
    /// without addresses; NXDOMAIN throws.
    public func addresses(_ host: String) throws -> [String] { try securedAddresses(host).addresses }

    /// `addresses(_:)`, and whether both the A and the AAAA answers were validated
    /// (RFC 7672 2.2.2: TLSA records count only for a host whose addresses are secure).
    public func securedAddresses(_ host: String) throws -> (addresses: [String], secure: Bool) {
        var out: [String] = []
        var secure = true
        for (type, family, size) in [(ns_t_a, AF_INET, 4), (ns_t_aaaa, AF_INET6, 16)] {
            let answer = try lookup(host, type: type)
            secure = secure && answer.authenticated
            guard let records = answer.records else { continue }
            for r in records where r.rdata.count == size {
                var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
                let ok = r.rdata.withUnsafeBytes { raw in inet_ntop(family, raw.baseAddress, &text, socklen_t(text.count)) }
                if ok != nil { out.append(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
            }
        }
        return (out, secure)
    }

    /// The TXT records of `name`, each record's character-strings joined (RFC 7208
    /// 3.3, as MTA-STS and TLSRPT records are read); nil when the name has none.
    public func txt(_ name: String) throws -> [String]? {
        guard let records = try query(name, type: ns_t_txt) else { return nil }
        return try records.map { try Self.txtText($0.rdata, name: name) }
    }

    /// One TXT record's character-strings joined (a separate step so that it can be
    /// tested, and fuzzed, without a DNS server).
    static func txtText(_ rdata: [UInt8], name: String) throws -> String {
        var text = [UInt8]()
        var i = 0
        while i < rdata.count {
            let n = Int(rdata[i])
            guard i + 1 + n <= rdata.count else { throw DNSError.invalid("\(name): malformed TXT record") }
            text += rdata[(i + 1)..<(i + 1 + n)]
            i += 1 + n
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// A letter-digit-hyphen host name of at most 253 octets (what an MX target and a
    /// mail domain must be); rejects anything an attacker could smuggle into a log.
    public static func isHostName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 253 else { return false }
        for label in bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.count <= 63, label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-") else { return false }
            for c in label {
                let ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
                if !ok { return false }
            }
        }
        return true
    }

    struct Record {
        var message: [UInt8]
        var rdataOffset: Int
        var rdata: [UInt8]

        func expandName(at offset: Int) throws -> String {
            var name = [CChar](repeating: 0, count: Int(NS_MAXDNAME))
            let n = message.withUnsafeBufferPointer { m in
                dn_expand(m.baseAddress!, m.baseAddress! + m.count, m.baseAddress! + offset, &name, Int32(name.count))
            }
            guard n >= 0 else { throw DNSError.invalid("malformed name in a DNS answer") }
            let s = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return s == "." ? "" : s
        }
    }

    /// Records of `type` in the answer section; nil when the name exists but has none
    /// (NODATA).
    func query(_ name: String, type: ns_type) throws -> [Record]? { try lookup(name, type: type).records }

    /// One question. NXDOMAIN throws `noSuchDomain`; SERVFAIL (a validating
    /// resolver's answer to bogus data) and timeouts throw `temporary`.
    func lookup(_ name: String, type: ns_type) throws -> DNSAnswer {
        let name = name.hasSuffix(".") ? String(name.dropLast()) : name
        guard Self.isHostName(name) else {
            throw DNSError.invalid("\"\(name.prefix(80))\" is not a domain name")
        }
        var answer = [UInt8](repeating: 0, count: 65_535)
        let n = res_nquery(state, name + ".", Int32(ns_c_in.rawValue), Int32(type.rawValue), &answer, Int32(answer.count))
        if n < 0 {
            switch sl_res_h_errno(state) {
            case HOST_NOT_FOUND: throw DNSError.noSuchDomain(name)
            case NO_DATA:
                // glibc leaves the NODATA reply in the buffer (length unknown): its
                // header says whether the denial was validated.
                return DNSAnswer(records: nil, authenticated: validating && DNSAnswer.headerSaysAuthenticated(answer))
            case NO_RECOVERY: throw DNSError.invalid("\(name): the DNS server refused the query")
            default: throw DNSError.temporary(name)
            }
        }
        var parsed = try DNSAnswer.parse(Array(answer[..<Int(n)]), name: name, type: UInt16(type.rawValue))
        parsed.authenticated = parsed.authenticated && validating
        return parsed
    }
}
