// SMTP MTA Strict Transport Security (RFC 8461): the `_mta-sts` TXT record and
// the policy a domain serves at https://mta-sts.DOMAIN/.well-known/mta-sts.txt.
// Both come from the network and are read strictly: what is not exactly the
// RFC's grammar is no record, or no policy (and a domain without a usable policy
// is judged as before, by WebPKI alone — never better).
import Foundation
import SLMessage

/// The `_mta-sts.DOMAIN` TXT record (RFC 8461 3.1): a version and a policy id.
public struct STSRecord: Sendable, Equatable {
    /// 1 to 32 letters and digits; a new id says the policy changed.
    public var id: String

    /// The record among the TXT answers: those that do not begin with "v=STSv1;"
    /// are not MTA-STS records; exactly one must remain and it must parse, else
    /// the domain has no record (3.1).
    public static func discover(in texts: [String]) -> STSRecord? {
        let candidates = texts.filter { $0.hasPrefix("v=STSv1;") }
        guard candidates.count == 1 else { return nil }
        return STSRecord(parsing: candidates[0])
    }

    /// sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
    public init?(parsing text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count <= 1_024 else { return nil }
        var fields = bytes.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false)
            .map { Array($0.drop { STSSyntax.isWSP($0) }.reversed().drop { STSSyntax.isWSP($0) }.reversed()) }
        // One trailing delimiter is allowed: "v=STSv1; id=1;".
        if fields.count > 2, fields.last?.isEmpty == true { fields.removeLast() }
        guard fields.first == Array("v=STSv1".utf8), fields.count >= 2 else { return nil }
        var id: String?
        for field in fields.dropFirst() {
            guard let eq = field.firstIndex(of: UInt8(ascii: "=")) else { return nil }
            let name = Array(field[..<eq]), value = Array(field[(eq + 1)...])
            guard STSSyntax.isExtensionName(name) else { return nil }
            if name == Array("id".utf8) {
                guard id == nil, (1...32).contains(value.count), value.allSatisfy(STSSyntax.isAlphanumeric) else { return nil }
                id = String(decoding: value, as: UTF8.self)
            } else {
                // sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E): no ";", no "=".
                guard !value.isEmpty, value.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E && $0 != 0x3B && $0 != 0x3D }) else { return nil }
            }
        }
        guard let id else { return nil }
        self.id = id
    }

    public init(id: String) { self.id = id }
}

/// A policy (RFC 8461 3.2).
public struct STSPolicy: Sendable, Equatable, Codable {
    public enum Mode: String, Sendable, Codable {
        /// Deliver only to matching MX hosts over verified TLS.
        case enforce
        /// Report what enforce would refuse; deliver as without a policy.
        case testing
        /// The domain withdrew its policy.
        case none
    }
    public var mode: Mode
    /// MX patterns: a host name, or "*." and a host name (one left-most label).
    public var mx: [String]
    /// Seconds the policy may be cached, at most 31557600 (a year).
    public var maxAge: Int

    enum CodingKeys: String, CodingKey { case mode, mx, maxAge = "max_age" }

    /// The policy as RFC 8460 reports quote it (policy-string): its lines.
    public var reportLines: [String] {
        ["version: STSv1", "mode: \(mode.rawValue)"] + mx.map { "mx: \($0)" } + ["max_age: \(maxAge)"]
    }

    /// The largest body read (RFC 8461 3.3 suggests 64 KiB).
    public static let maximumSize = 64 << 10
    public static let maximumAge = 31_557_600
    /// More patterns than any real domain needs; a bound on work per MX host.
    static let maximumPatterns = 64

    public init(mode: Mode, mx: [String], maxAge: Int) { self.mode = mode; self.mx = mx; self.maxAge = maxAge }

    /// Parses a policy body. Lines end in LF or CRLF; each is "key:" *WSP value
    /// *WSP. version, mode and max_age exactly once; mx once or more (except with
    /// mode none); other keys are extensions and ignored (3.2), but must still be
    /// well formed.
    public init(parsing body: Bytes) throws {
        guard body.count <= Self.maximumSize else { throw STSPolicyError("the policy is larger than 64 KiB") }
        guard !body.isEmpty else { throw STSPolicyError("the policy is empty") }
        var lines = body.split(separator: 0x0A, omittingEmptySubsequences: false).map { line -> ArraySlice<UInt8> in
            line.last == 0x0D ? line.dropLast() : line
        }
        // The record may end with a line terminator: one empty last "line".
        if lines.last?.isEmpty == true { lines.removeLast() }
        var version: String?, mode: Mode?, maxAge: Int?
        var mx: [String] = []
        for (n, line) in lines.enumerated() {
            let where_ = "line \(n + 1)"
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                throw STSPolicyError("\(where_) is not \"key: value\"")
            }
            let key = Array(line[..<colon])
            var value = Array(line[(colon + 1)...].drop { STSSyntax.isWSP($0) })
            while let last = value.last, STSSyntax.isWSP(last) { value.removeLast() }
            guard STSSyntax.isExtensionName(key) else { throw STSPolicyError("\(where_): a key that is not a field name") }
            guard !value.isEmpty, value.allSatisfy({ STSSyntax.isVChar($0) || STSSyntax.isWSP($0) }) else {
                throw STSPolicyError("\(where_): an empty value or one with bytes outside printable ASCII")
            }
            let text = String(decoding: value, as: UTF8.self)
            switch String(decoding: key, as: UTF8.self) {
            case "version":
                guard version == nil else { throw STSPolicyError("version appears twice") }
                guard text == "STSv1" else { throw STSPolicyError("version is not STSv1") }
                version = text
            case "mode":
                guard mode == nil else { throw STSPolicyError("mode appears twice") }
                guard let m = Mode(rawValue: text) else { throw STSPolicyError("mode is not enforce, testing or none") }
                mode = m
            case "max_age":
                guard maxAge == nil else { throw STSPolicyError("max_age appears twice") }
                guard (1...10).contains(value.count), value.allSatisfy(STSSyntax.isDigit), let age = Int(text), age <= Self.maximumAge else {
                    throw STSPolicyError("max_age is not a whole number of seconds up to 31557600")
                }
                maxAge = age
            case "mx":
                guard Self.isPattern(text) else { throw STSPolicyError("mx \"\(text.prefix(80))\" is not a host name or *.host name") }
                guard mx.count < Self.maximumPatterns else { throw STSPolicyError("more than \(Self.maximumPatterns) mx patterns") }
                mx.append(text.lowercased())
            default:
                continue            // an extension: ignored (3.2)
            }
        }
        guard version != nil else { throw STSPolicyError("no version field") }
        guard let mode else { throw STSPolicyError("no mode field") }
        guard let maxAge else { throw STSPolicyError("no max_age field") }
        guard !mx.isEmpty || mode == .none else { throw STSPolicyError("no mx field") }
        self.init(mode: mode, mx: mx, maxAge: maxAge)
    }

    /// A host name (letters, digits, hyphens; no trailing dot), optionally behind "*.".
    static func isPattern(_ p: String) -> Bool {
        let name = p.hasPrefix("*.") ? String(p.dropFirst(2)) : p
        guard name.contains("."), !name.utf8.contains(UInt8(ascii: "_")) else { return false }
        return DNSResolver.isHostName(name)
    }

    /// RFC 8461 4.1: an MX host matches a pattern equal to it (without case), or
    /// "*.rest" when it is exactly one label followed by ".rest". "*.example.com"
    /// matches mx.example.com, not example.com and not a.b.example.com.
    public func matches(_ host: String) -> Bool {
        var h = host.lowercased()
        if h.hasSuffix(".") { h.removeLast() }
        return mx.contains { pattern in
            if pattern.hasPrefix("*.") {
                guard let dot = h.firstIndex(of: "."), dot != h.startIndex else { return false }
                return h[h.index(after: dot)...] == pattern.dropFirst(2)
            }
            return h == pattern
        }
    }
}

/// A policy body that is not RFC 8461's grammar; one line that says where.
public struct STSPolicyError: SysexitReporting, CustomStringConvertible, Equatable {
    public let description: String
    init(_ d: String) { description = d }
    /// A domain's policy that cannot be read is evidence, never a run's end; if it
    /// ever were, it is the remote side's, and may be mended: try again later.
    public var sysexit: Sysexit { .tempFail }
}

/// Character classes of RFC 8461's ABNF.
enum STSSyntax {
    static func isWSP(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }
    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    static func isAlphanumeric(_ b: UInt8) -> Bool { isDigit(b) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) }
    static func isVChar(_ b: UInt8) -> Bool { b >= 0x21 && b <= 0x7E }
    /// (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."), for TXT and policy keys alike.
    static func isExtensionName(_ name: [UInt8]) -> Bool {
        guard let first = name.first, isAlphanumeric(first), name.count <= 32 else { return false }
        return name.dropFirst().allSatisfy { isAlphanumeric($0) || $0 == 0x5F || $0 == 0x2D || $0 == 0x2E }
    }
}
