// The shared syntax of Content-Type and Content-Disposition values (RFC 2045 5.1,
// RFC 2183 2): a head, then `; attribute=value` pairs where values are tokens or quoted
// strings and comments may appear anywhere, plus RFC 2231 extended parameters
// (`name*=charset'lang'%XX`, continuations `name*0=`, `name*1*=`).
//
// Parsing is lenient because these values are attacker-controlled and real senders get
// them wrong: nothing here throws, unterminated quotes and comments run to the end of
// the value, and a parameter we cannot make sense of is skipped. The scanner is a
// single loop with a nesting counter for comments, so no input can make it recurse.

enum MIMEParameters {
    // MARK: Character classes

    /// RFC 2045 tspecials, which end a token and force quoting.
    static func isTSpecial(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "<"), UInt8(ascii: ">"),
             UInt8(ascii: "@"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: ":"),
             UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "/"), UInt8(ascii: "["),
             UInt8(ascii: "]"), UInt8(ascii: "?"), UInt8(ascii: "="):
            return true
        default:
            return false
        }
    }

    /// RFC 2045 token characters: printable ASCII other than space and tspecials.
    static func isTokenByte(_ b: UInt8) -> Bool { b > 0x20 && b < 0x7F && !isTSpecial(b) }

    static func isToken<C: Collection>(_ s: C) -> Bool where C.Element == UInt8 {
        !s.isEmpty && s.allSatisfy(isTokenByte)
    }

    /// RFC 2231 attribute-char: token characters except `*`, `'` and `%`, which carry
    /// meaning inside an extended value. Everything else is percent-encoded.
    static func isAttributeChar(_ b: UInt8) -> Bool {
        isTokenByte(b) && b != UInt8(ascii: "*") && b != UInt8(ascii: "'") && b != UInt8(ascii: "%")
    }

    // MARK: Parsing

    /// Splits `value` into its head (before the first `;`, comments and white space
    /// removed) and its decoded parameters (names lowercased).
    static func parse(_ value: String) -> (head: String, parameters: [String: String]) {
        let segments = split(Array(value.utf8))
        let head = String(lenientUTF8: segments[0].filter { !ASCII.isWSP($0) && $0 != ASCII.cr && $0 != ASCII.lf })
        return (head, decode(segments.dropFirst()))
    }

    /// Splits at `;` outside quoted strings and comments. Comments are replaced by one
    /// space (they separate like white space); quoted strings are kept with their quotes
    /// and escapes so the value parser can tell a quoted `;` from a separator.
    static func split(_ s: Bytes) -> [Bytes] {
        var segments: [Bytes] = []
        var current = Bytes()
        var i = 0
        while i < s.count {
            let b = s[i]
            if b == UInt8(ascii: "\"") {
                current.append(b)
                i += 1
                while i < s.count {
                    let c = s[i]
                    if c == UInt8(ascii: "\\"), i + 1 < s.count {
                        current.append(c); current.append(s[i + 1])
                        i += 2
                        continue
                    }
                    current.append(c)
                    i += 1
                    if c == UInt8(ascii: "\"") { break }
                }
            } else if b == UInt8(ascii: "(") {
                // Comments nest (RFC 5322 3.2.2); a counter, not recursion.
                var depth = 1
                i += 1
                while i < s.count && depth > 0 {
                    let c = s[i]
                    if c == UInt8(ascii: "\\") { i += 2; continue }
                    if c == UInt8(ascii: "(") { depth += 1 }
                    if c == UInt8(ascii: ")") { depth -= 1 }
                    i += 1
                }
                current.append(ASCII.space)
            } else if b == UInt8(ascii: ";") {
                segments.append(current)
                current = []
                i += 1
            } else {
                current.append(b)
                i += 1
            }
        }
        segments.append(current)
        return segments
    }

    /// One RFC 2231 section of a parameter split across several attributes.
    private struct Section {
        var extended: Bool
        var value: Bytes
    }

    /// Turns `attribute=value` segments into decoded parameters. Where a parameter is
    /// given more than once the first occurrence wins; an RFC 2231 form wins over a plain
    /// one of the same name, since senders add it precisely because the plain one is a
    /// lossy fallback.
    static func decode<S: Sequence>(_ segments: S) -> [String: String] where S.Element == Bytes {
        var plain: [String: String] = [:]
        var sections: [String: [Int: Section]] = [:]

        for segment in segments {
            guard let eq = segment.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let nameBytes = trimmed(segment[..<eq])
            guard isToken(nameBytes) else { continue }
            let name = String(lenientUTF8: nameBytes).lowercased()
            let value = unquote(trimmed(segment[(eq + 1)...]))

            if let (base, index, extended) = splitSectionName(name) {
                if sections[base, default: [:]][index] == nil {
                    sections[base, default: [:]][index] = Section(extended: extended, value: value)
                }
            } else if plain[name] == nil {
                plain[name] = String(lenientUTF8: value)
            }
        }

        var result = plain
        for (base, parts) in sections {
            result[base] = assemble(parts)
        }
        // Outlook and others put RFC 2047 encoded words in file names, against RFC 2047
        // section 5; decode them there only, since elsewhere (a boundary, say) `=?` is
        // ordinary text.
        for key in ["name", "filename"] where plain[key] != nil && sections[key] == nil {
            if let v = result[key], v.contains("=?") { result[key] = EncodedWords.decode(v) }
        }
        return result
    }

    /// `title*` -> (title, 0, extended); `title*2` -> (title, 2, plain);
    /// `title*2*` -> (title, 2, extended). Anything else is an ordinary name.
    private static func splitSectionName(_ name: String) -> (String, Int, Bool)? {
        guard let star = name.firstIndex(of: "*") else { return nil }
        let base = String(name[..<star])
        var rest = name[name.index(after: star)...]
        guard !base.isEmpty else { return nil }
        if rest.isEmpty { return (base, 0, true) }
        var extended = false
        if rest.hasSuffix("*") { extended = true; rest = rest.dropLast() }
        // Bounded so a hostile index cannot overflow; no real value has 10,000 sections.
        guard !rest.isEmpty, rest.count <= 4, rest.allSatisfy({ $0.isASCII && $0.isNumber }),
              let index = Int(rest) else { return nil }
        return (base, index, extended)
    }

    /// Joins RFC 2231 sections in index order and converts the result from the charset
    /// named in the first extended section. Gaps in the numbering are tolerated.
    private static func assemble(_ parts: [Int: Section]) -> String {
        var bytes = Bytes()
        var charset = ""
        for (n, (_, section)) in parts.sorted(by: { $0.key < $1.key }).enumerated() {
            guard section.extended else { bytes += section.value; continue }
            var v = section.value[...]
            if n == 0 {
                // charset'language'text; the language is of no use to a filter.
                let quotes = v.indices.filter { v[$0] == UInt8(ascii: "'") }.prefix(2)
                if quotes.count == 2, let first = quotes.first, let second = quotes.last {
                    charset = String(lenientUTF8: v[v.startIndex..<first])
                    v = v[(second + 1)...]
                }
            }
            bytes += percentDecode(v)
        }
        return Charsets.decode(bytes, charset: charset) ?? String(lenientUTF8: bytes)
    }

    /// `%XX` to bytes; a `%` not followed by two hex digits is kept as written.
    static func percentDecode(_ v: ArraySlice<UInt8>) -> Bytes {
        TransferDecoding.percentDecoded(v, strict: false) ?? Array(v)
    }

    private static func trimmed(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var s = s
        while let f = s.first, ASCII.isWSP(f) || f == ASCII.cr || f == ASCII.lf { s.removeFirst() }
        while let l = s.last, ASCII.isWSP(l) || l == ASCII.cr || l == ASCII.lf { s.removeLast() }
        return s
    }

    /// A quoted string's content with backslash escapes undone (anything after the
    /// closing quote is dropped); any other value as written.
    private static func unquote(_ s: ArraySlice<UInt8>) -> Bytes {
        guard s.first == UInt8(ascii: "\"") else { return Array(s) }
        var out = Bytes()
        var i = s.startIndex + 1
        while i < s.endIndex {
            let c = s[i]
            if c == UInt8(ascii: "\"") { break }
            if c == UInt8(ascii: "\\"), i + 1 < s.endIndex {
                out.append(s[i + 1])
                i += 2
                continue
            }
            out.append(c)
            i += 1
        }
        return out
    }

    // MARK: Serialising

    /// Values longer than this are split into RFC 2231 continuations so a folded header
    /// line stays under 78 characters.
    static let sectionLength = 60

    /// `; name=value` for every parameter, names sorted so output is deterministic.
    /// Names that are not tokens (or contain `*`) cannot be written unambiguously and
    /// are left out.
    static func serialize(_ parameters: [String: String]) -> String {
        var out = ""
        for (name, value) in parameters.sorted(by: { $0.key < $1.key }) {
            let n = name.lowercased()
            guard isToken(n.utf8), !n.contains("*") else { continue }
            for piece in encode(name: n, value: value) { out += "; " + piece }
        }
        return out
    }

    /// One or more `attribute=value` pieces for a parameter: a token when possible, a
    /// quoted string for other printable ASCII, RFC 2231 UTF-8 for anything else; long
    /// values are split into numbered sections. The boundary is never split, because
    /// some receivers do not reassemble it and RFC 2046 caps it at 70 characters anyway.
    static func encode(name: String, value: String) -> [String] {
        let v = Array(value.utf8)
        let printable = v.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
        if printable {
            if isToken(v) && (v.count <= sectionLength || name == "boundary") { return ["\(name)=\(value)"] }
            if v.count <= sectionLength || name == "boundary" { return ["\(name)=\(quote(v))"] }
            var pieces: [String] = []
            var start = 0
            while start < v.count {
                let end = min(v.count, start + sectionLength)
                pieces.append("\(name)*\(pieces.count)=\(quote(v[start..<end]))")
                start = end
            }
            return pieces
        }
        // RFC 2231 extended value in UTF-8, split only between whole %XX escapes.
        var chunks: [String] = []
        var current = "utf-8''"
        for b in v {
            let enc = isAttributeChar(b) ? String(UnicodeScalar(b)) : percentEscape(b)
            if current.utf8.count + enc.utf8.count > sectionLength {
                chunks.append(current)
                current = ""
            }
            current += enc
        }
        chunks.append(current)
        if chunks.count == 1 { return ["\(name)*=\(chunks[0])"] }
        return chunks.enumerated().map { "\(name)*\($0.offset)*=\($0.element)" }
    }

    private static func percentEscape(_ b: UInt8) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        return String(decoding: [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 0x0F)]], as: UTF8.self)
    }

    private static func quote<C: Collection>(_ v: C) -> String where C.Element == UInt8 {
        var out: Bytes = [UInt8(ascii: "\"")]
        for b in v {
            if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
            out.append(b)
        }
        out.append(UInt8(ascii: "\""))
        return String(decoding: out, as: UTF8.self)
    }
}
