/// URLs in attributes, read the way a browser's URL parser reads them, so the
/// scheme checked here is the scheme a browser would use. The parser has already
/// decoded character references (`&#106;avascript:`); what remains is to do what
/// the URL standard does before it looks for a scheme.
enum LinkPolicy {
    /// Schemes a mail link may have. Relative links are not allowed either: they
    /// would resolve against the portal's own address.
    static let linkSchemes: Set<String> = ["http", "https", "mailto"]

    /// The href as a browser will follow it, or nil when it is not an absolute
    /// http, https or mailto URL.
    static func safeLink(_ href: String) -> String? {
        guard let url = cleaned(href), let scheme = scheme(of: url), linkSchemes.contains(scheme) else { return nil }
        return url
    }

    /// The Content-ID of a `cid:` image reference (RFC 2392), as written, or nil
    /// for any other source.
    static func contentID(_ src: String) -> String? {
        guard let url = cleaned(src), scheme(of: url) == "cid" else { return nil }
        return String(url.dropFirst(4))
    }

    /// The URL standard strips leading and trailing C0 controls and spaces and
    /// removes every tab, LF and CR (`java\tscript:` is `javascript:`); any other
    /// control character left is refused outright, since no real link has one.
    static func cleaned(_ value: String) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(value.utf8.count)
        for b in value.utf8 where b != 0x09 && b != 0x0A && b != 0x0D {
            if b <= 0x20 && bytes.isEmpty { continue }   // leading
            bytes.append(b)
        }
        while let last = bytes.last, last <= 0x20 { bytes.removeLast() }
        guard !bytes.isEmpty, !bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The scheme, lowercased, when the URL starts with one (RFC 3986: a letter,
    /// then letters, digits, + - .), else nil (a relative URL).
    static func scheme(of url: String) -> String? {
        guard let colon = url.utf8.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let name = url.utf8[..<colon]
        guard let first = name.first, isLetter(first),
              name.allSatisfy({ isLetter($0) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2B || $0 == 0x2D || $0 == 0x2E })
        else { return nil }
        return String(decoding: name.map { $0 | 0x20 }, as: UTF8.self)
    }

    private static func isLetter(_ b: UInt8) -> Bool { (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A }
}
