import Foundation

/// One mailbox: an addr-spec (RFC 5322 3.4.1, UTF-8 allowed per RFC 6531/6532) and an
/// optional display name. Every value is validated on construction, so a value of this
/// type can go into a header field or an SMTP envelope without further checks: no
/// control characters, no line breaks, lengths within RFC 5321 limits.
///
/// The properties are read-only because they are derived from one another and checked
/// together; build a new value (or use `withDisplayName`) to change one.
///
/// `==` compares every property, display name included. To ask "same mailbox?", compare
/// `key`.
public struct EmailAddress: Hashable, Sendable, CustomStringConvertible {
    /// The local part unquoted and unescaped: `john doe` for `"john doe"@x`.
    public private(set) var localPart: String
    /// The domain as written, Unicode allowed; a domain literal keeps its brackets.
    public private(set) var domain: String
    /// The display name, RFC 2047-decoded, unquoted, comments removed; nil when none.
    public private(set) var displayName: String?
    /// `local@domain` with the local part quoted when it is not a dot-atom, domain as
    /// written. This is the form for SMTP envelopes and for showing to people.
    public private(set) var addrSpec: String
    /// The domain lowercased, non-ASCII labels as IDNA A-labels: for DNS and comparison.
    /// Domain literals are lowercased and keep their brackets.
    public private(set) var asciiDomain: String
    /// The comparison key: the local part NFC-normalised and lowercased, "@", and
    /// `asciiDomain`. Lowercasing the local part is not RFC-correct (local parts are
    /// case-sensitive) but is what every real mail system does, and what a policy lookup
    /// must do so that `Alice@X` cannot slip past a rule for `alice@x`.
    public private(set) var key: String

    public var description: String { addrSpec }

    /// Builds an address from its parts, validating them. `localPart` is the unquoted
    /// form; `domain` is a domain name (Unicode allowed) or a bracketed domain literal.
    public init(localPart: String, domain: String, displayName: String? = nil) throws {
        guard !localPart.isEmpty else { throw AddressError("empty local part") }
        try Self.checkNoControls(localPart, in: "local part")
        let wireLocal = Self.quotedLocalPart(localPart)
        // RFC 5321 4.5.3.1.1 counts the local part as it appears on the wire (quoted).
        guard wireLocal.utf8.count <= 64 else { throw AddressError("local part is longer than 64 octets") }

        guard !domain.isEmpty else { throw AddressError("missing domain") }
        try Self.checkNoControls(domain, in: "domain")
        let ascii: String
        if domain.hasPrefix("[") {
            try Self.checkDomainLiteral(domain)
            ascii = domain.lowercased()
        } else {
            ascii = try IDNA.toASCII(domain)
        }

        let spec = wireLocal + "@" + domain
        // RFC 5321 4.5.3.1.3: a path is at most 256 octets including the angle brackets.
        // Check both forms, since the A-label form can be the longer one.
        guard spec.utf8.count <= 254, wireLocal.utf8.count + 1 + ascii.utf8.count <= 254 else {
            throw AddressError("address is longer than 254 octets")
        }

        var name: String? = nil
        if let d = displayName {
            try Self.checkNoControls(d, in: "display name")
            let trimmed = d.trimmingCharacters(in: .whitespaces)
            name = trimmed.isEmpty ? nil : trimmed
        }

        self.localPart = localPart
        self.domain = domain
        self.displayName = name
        self.addrSpec = spec
        self.asciiDomain = ascii
        // NFC only matters for non-ASCII, and is the costly step in long lists.
        let normalized = localPart.utf8.allSatisfy({ $0 < 0x80 }) ? localPart : localPart.precomposedStringWithCanonicalMapping
        self.key = normalized.lowercased() + "@" + ascii
    }

    /// Parses one address as given on a command line or in configuration: `a@b`,
    /// `<a@b>`, `Name <a@b>`, `"Name" <a@b> (comment)`. Groups, lists and trailing
    /// commas are refused.
    public init(parsing text: String) throws {
        self = try AddressParser.parseSingle(text)
    }

    /// The same mailbox with another display name (validated like any other).
    public func withDisplayName(_ name: String?) throws -> EmailAddress {
        try EmailAddress(localPart: localPart, domain: domain, displayName: name)
    }

    /// The mailbox as it is written in a header field: `addr-spec` alone, or
    /// `phrase <addr-spec>` with the display name quoted or RFC 2047-encoded as needed.
    /// Not folded; the header writer folds.
    public var headerValue: String {
        guard let name = displayName else { return addrSpec }
        return Self.phrase(name) + " <" + addrSpec + ">"
    }

    // MARK: - Validation and quoting

    /// Refuses C0 controls (tab, CR, LF and NUL included), DEL and C1 controls. These
    /// values are written into header fields; a line break would let an attacker add
    /// fields, and other controls confuse terminals and log readers.
    static func checkNoControls(_ s: String, in what: String) throws {
        for u in s.unicodeScalars where u.value < 0x20 || (u.value >= 0x7F && u.value <= 0x9F) {
            throw AddressError("\(what) contains the control character \(AddressError.describe(u))")
        }
    }

    /// A domain literal (RFC 5322 3.4.1): `[` dtext `]`, dtext being printable ASCII
    /// other than `[`, `]` and `\`. No quoted pairs (obs-dtext), no white space.
    static func checkDomainLiteral(_ d: String) throws {
        let u = Array(d.utf8)
        guard u.count >= 3, u.first == UInt8(ascii: "["), u.last == UInt8(ascii: "]") else {
            throw AddressError("domain literal is not enclosed in brackets or is empty")
        }
        for b in u[1..<(u.count - 1)] where !(b >= 33 && b <= 126) || b == UInt8(ascii: "[") || b == UInt8(ascii: "]") || b == UInt8(ascii: "\\") {
            throw AddressError("domain literal contains \(AddressError.describe(b))")
        }
    }

    /// RFC 5322 atext, extended by RFC 6532 to every non-ASCII UTF-8 byte.
    static func isAtext(_ b: UInt8) -> Bool {
        if b >= 0x80 { return true }
        if IDNA.isLDH(b) { return true }
        switch b {
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "="),
             UInt8(ascii: "?"), UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "{"),
             UInt8(ascii: "|"), UInt8(ascii: "}"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// True when `s` is a dot-atom-text: atext runs separated by single dots.
    static func isDotAtom(_ s: String) -> Bool {
        var previousWasDot = true          // so a leading dot fails
        for b in s.utf8 {
            if b == UInt8(ascii: ".") {
                if previousWasDot { return false }
                previousWasDot = true
            } else if isAtext(b) {
                previousWasDot = false
            } else {
                return false
            }
        }
        return !previousWasDot             // empty or trailing dot fails
    }

    /// RFC 5322 3.2.4: a quoted string with `\` and `"` escaped. Callers have already
    /// refused controls, so everything else is qtext or a space.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            if c == "\\" || c == "\"" { out.unicodeScalars.append("\\") }
            out.unicodeScalars.append(c)
        }
        out.unicodeScalars.append("\"")
        return out
    }

    /// The local part as written in an addr-spec: as is when a dot-atom, else quoted.
    static func quotedLocalPart(_ local: String) -> String {
        isDotAtom(local) ? local : quoted(local)
    }

    /// A display name as a phrase: plain words when they are all atoms, an RFC 2047
    /// encoding when not ASCII (or when it looks like an encoded word itself), else a
    /// quoted string.
    static func phrase(_ name: String) -> String {
        let encoded = EncodedWords.encodeIfNeeded(name)
        if encoded != name { return encoded }
        let words = name.split(separator: " ", omittingEmptySubsequences: false)
        if words.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy(isAtext) }) { return name }
        return quoted(name)
    }
}
