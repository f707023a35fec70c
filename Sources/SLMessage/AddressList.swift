// RFC 5322 section 3.4 address lists, with the obsolete syntax of section 4.4 that
// real mail still carries. Parsing is two linear passes: a tokenizer that removes
// comments and white space (remembering where white space was), then a parser over the
// tokens. Neither recurses, so hostile nesting costs a counter, not stack.

/// Address-list header values (To, Cc, Bcc, From, Reply-To, Sender, ...).
public enum AddressList {
    /// Parses an address-list header value (To/Cc/Bcc/From/Reply-To), unfolded, not yet
    /// RFC 2047 decoded. Groups are flattened (group names dropped, empty groups such as
    /// `undisclosed-recipients:;` give nothing). Empty list elements (`a@x,,b@y`) are
    /// skipped. Any malformed element makes the whole value an error: a recipient list
    /// we only partly understood must not be acted on as if it were complete.
    public static func parse(_ value: String) throws -> [EmailAddress] {
        var parser = try AddressParser(value)
        return try parser.parseList()
    }
}

/// One lexical unit of an address: an atom, quoted string or domain literal (with its
/// content), or one of the specials the grammar needs.
struct AddressToken {
    enum Kind: Equatable {
        case atom, quoted, domainLiteral
        case lessThan, greaterThan, colon, semicolon, at, comma, dot

        var name: String {
            switch self {
            case .atom: return "word"
            case .quoted: return "quoted string"
            case .domainLiteral: return "domain literal"
            case .lessThan: return "\"<\""
            case .greaterThan: return "\">\""
            case .colon: return "\":\""
            case .semicolon: return "\";\""
            case .at: return "\"@\""
            case .comma: return "\",\""
            case .dot: return "\".\""
            }
        }
    }

    var kind: Kind
    /// Atom text; quoted-string content with quoted pairs resolved; domain literal with
    /// its brackets and without white space. Empty for specials.
    var text: String
    /// White space or a comment came before this token (phrases keep one space there).
    var spaceBefore: Bool

    var isWordOrDot: Bool { kind == .atom || kind == .quoted || kind == .dot }
}

enum AddressTokenizer {
    /// Comments nest (RFC 5322 3.2.2). Nothing legitimate nests deeper than a few levels;
    /// the cap bounds the work a hostile value can ask for and gives a clear error.
    static let maxCommentDepth = 64

    static func tokenize(_ value: String) throws -> [AddressToken] {
        let b = Array(value.utf8)
        // Unfolded values hold no CR or LF; tab is white space. Every other C0 control
        // and DEL is refused wherever it is, comments included.
        if let bad = b.firstIndex(where: { ($0 < 0x20 && $0 != ASCII.tab) || $0 == 0x7F }) {
            throw AddressError("contains the control character \(AddressError.describe(b[bad])) at offset \(bad)")
        }
        var tokens: [AddressToken] = []
        var space = false
        var i = 0
        func add(_ kind: AddressToken.Kind, _ text: String = "") {
            tokens.append(AddressToken(kind: kind, text: text, spaceBefore: space))
            space = false
        }
        while i < b.count {
            let c = b[i]
            switch c {
            case ASCII.space, ASCII.tab:
                space = true
                i += 1
            case UInt8(ascii: "("):
                i = try skipComment(b, from: i)
                space = true
            case UInt8(ascii: ")"):
                throw AddressError("\")\" without a matching \"(\" at offset \(i)")
            case UInt8(ascii: "\""):
                let (content, next) = try quotedString(b, from: i)
                add(.quoted, content)
                i = next
            case UInt8(ascii: "["):
                let (literal, next) = try domainLiteral(b, from: i)
                add(.domainLiteral, literal)
                i = next
            case UInt8(ascii: "<"): add(.lessThan); i += 1
            case UInt8(ascii: ">"): add(.greaterThan); i += 1
            case UInt8(ascii: ":"): add(.colon); i += 1
            case UInt8(ascii: ";"): add(.semicolon); i += 1
            case UInt8(ascii: "@"): add(.at); i += 1
            case UInt8(ascii: ","): add(.comma); i += 1
            case UInt8(ascii: "."): add(.dot); i += 1
            default:
                guard EmailAddress.isAtext(c) else {
                    throw AddressError("unexpected \(AddressError.describe(c)) at offset \(i)")
                }
                let start = i
                while i < b.count, EmailAddress.isAtext(b[i]) { i += 1 }
                // Atoms end at ASCII bytes, so the slice is whole UTF-8 sequences.
                add(.atom, String(decoding: b[start..<i], as: UTF8.self))
            }
        }
        return tokens
    }

    /// Skips a comment starting at the `(` at `start`; returns the index after it.
    static func skipComment(_ b: [UInt8], from start: Int) throws -> Int {
        var depth = 0
        var i = start
        while i < b.count {
            switch b[i] {
            case UInt8(ascii: "\\"):
                i += 2                      // quoted-pair: the next byte is literal
                continue
            case UInt8(ascii: "("):
                depth += 1
                if depth > maxCommentDepth {
                    throw AddressError("comments nested deeper than \(maxCommentDepth) levels")
                }
            case UInt8(ascii: ")"):
                depth -= 1
                if depth == 0 { return i + 1 }
            default:
                break
            }
            i += 1
        }
        throw AddressError("unterminated comment (missing \")\")")
    }

    /// Reads a quoted string starting at the `"` at `start`: its content with quoted
    /// pairs resolved, and the index after the closing quote.
    static func quotedString(_ b: [UInt8], from start: Int) throws -> (String, Int) {
        var out: [UInt8] = []
        var i = start + 1
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                return (String(decoding: out, as: UTF8.self), i + 1)
            }
            if c == UInt8(ascii: "\\") {
                guard i + 1 < b.count else { break }
                out.append(b[i + 1])
                i += 2
                continue
            }
            out.append(c)
            i += 1
        }
        throw AddressError("unterminated quoted string (missing closing '\"')")
    }

    /// Reads a domain literal starting at the `[` at `start`. White space inside is
    /// dropped (the grammar allows FWS there and it carries no meaning); quoted pairs
    /// (obs-dtext) and non-ASCII are refused, since no real address literal needs them.
    static func domainLiteral(_ b: [UInt8], from start: Int) throws -> (String, Int) {
        var out: [UInt8] = [UInt8(ascii: "[")]
        var i = start + 1
        while i < b.count {
            let c = b[i]
            switch c {
            case UInt8(ascii: "]"):
                out.append(c)
                return (String(decoding: out, as: UTF8.self), i + 1)
            case ASCII.space, ASCII.tab:
                break
            case UInt8(ascii: "["), UInt8(ascii: "\\"):
                throw AddressError("domain literal contains \(AddressError.describe(c))")
            default:
                guard c < 0x80 else { throw AddressError("domain literal contains non-ASCII text") }
                out.append(c)
            }
            i += 1
        }
        throw AddressError("unterminated domain literal (missing \"]\")")
    }
}

/// The grammar over tokens. Each method consumes what it recognises and leaves `pos`
/// after it; none recurses except group -> mailbox, which is one level by the grammar.
struct AddressParser {
    let tokens: [AddressToken]
    var pos = 0

    init(_ text: String) throws {
        tokens = try AddressTokenizer.tokenize(text)
    }

    var atEnd: Bool { pos >= tokens.count }
    var peek: AddressToken.Kind? { pos < tokens.count ? tokens[pos].kind : nil }

    /// One mailbox and nothing else (command lines, configuration).
    static func parseSingle(_ text: String) throws -> EmailAddress {
        var p = try AddressParser(text)
        guard !p.atEnd else { throw AddressError("empty address") }
        var out: [EmailAddress] = []
        try p.parseAddress(into: &out, allowGroup: false)
        guard p.atEnd else { throw p.unexpected("after the address") }
        guard out.count == 1, let a = out.first else { throw AddressError("expected one address") }
        return a
    }

    /// address-list / obs-addr-list: addresses separated by commas, empty ones allowed.
    mutating func parseList() throws -> [EmailAddress] {
        var out: [EmailAddress] = []
        while true {
            while peek == .comma { pos += 1 }
            if atEnd { break }
            try parseAddress(into: &out, allowGroup: true)
            if atEnd { break }
            guard peek == .comma else { throw unexpected("after an address (missing \",\"?)") }
        }
        return out
    }

    /// address = mailbox / group. Looks past the leading words and dots (a display name,
    /// group name or local part; the grammar cannot tell which until what follows) and
    /// decides by the token after them.
    mutating func parseAddress(into out: inout [EmailAddress], allowGroup: Bool) throws {
        let start = pos
        var j = pos
        while j < tokens.count, tokens[j].isWordOrDot { j += 1 }
        let next: AddressToken.Kind? = j < tokens.count ? tokens[j].kind : nil
        switch next {
        case .at:
            let local = try localPart(start..<j)
            pos = j + 1
            let domain = try parseDomain()
            out.append(try EmailAddress(localPart: local, domain: domain))
        case .lessThan:
            let name = try displayName(start..<j)
            pos = j + 1
            out.append(try angleAddr(displayName: name))
        case .colon:
            guard allowGroup else { throw AddressError("a group is not allowed here") }
            guard j > start else { throw AddressError("group has no name before \":\"") }
            pos = j + 1
            try groupList(into: &out)
        default:
            pos = j
            if j == start { throw unexpected("where an address should start") }
            if next == nil || next == .comma { throw AddressError("missing \"@\" and domain") }
            throw unexpected("in an address")
        }
    }

    /// group-list after the colon, through the closing semicolon. Members are mailboxes;
    /// empty members are skipped (obs-group-list).
    mutating func groupList(into out: inout [EmailAddress]) throws {
        while true {
            while peek == .comma { pos += 1 }
            if peek == .semicolon { pos += 1; return }
            guard !atEnd else { throw AddressError("unterminated group (missing \";\")") }
            try parseAddress(into: &out, allowGroup: false)
            if peek == .semicolon { pos += 1; return }
            guard !atEnd else { throw AddressError("unterminated group (missing \";\")") }
            guard peek == .comma else { throw unexpected("in a group") }
        }
    }

    /// angle-addr after the `<`: an optional obs-route (dropped), addr-spec, `>`.
    mutating func angleAddr(displayName: String?) throws -> EmailAddress {
        if peek == .at || peek == .comma {
            // obs-route: obs-domain-list ":" — source routes are ignored (RFC 5321 C).
            while peek == .at || peek == .comma {
                if peek == .comma { pos += 1; continue }
                pos += 1
                _ = try parseDomain()
            }
            guard peek == .colon else {
                throw atEnd ? AddressError("unterminated \"<\" (missing \">\")") : unexpected("in a source route")
            }
            pos += 1
        }
        let start = pos
        var j = pos
        while j < tokens.count, tokens[j].isWordOrDot { j += 1 }
        guard j < tokens.count else { throw AddressError("unterminated \"<\" (missing \">\")") }
        guard tokens[j].kind == .at else {
            pos = j
            if tokens[j].kind == .greaterThan {
                throw AddressError(j == start ? "empty address \"<>\"" : "missing \"@\" and domain")
            }
            throw unexpected("in an address")
        }
        let local = try localPart(start..<j)
        pos = j + 1
        let domain = try parseDomain()
        guard !atEnd else { throw AddressError("unterminated \"<\" (missing \">\")") }
        guard peek == .greaterThan else { throw unexpected("in an address") }
        pos += 1
        return try EmailAddress(localPart: local, domain: domain, displayName: displayName)
    }

    /// local-part = word *("." word), CFWS around the dots allowed (obs-local-part).
    /// The result is unquoted: `"a b".c` gives `a b.c`.
    func localPart(_ r: Range<Int>) throws -> String {
        guard !r.isEmpty else { throw AddressError("empty local part") }
        var out = ""
        var expectWord = true
        for k in r {
            let t = tokens[k]
            if t.kind == .dot {
                guard !expectWord else { throw AddressError("local part has a leading or doubled dot") }
                out += "."
                expectWord = true
            } else {
                guard expectWord else {
                    throw AddressError("text before the address is not a local part (write Name <local@domain>)")
                }
                out += t.text
                expectWord = false
            }
        }
        guard !expectWord else { throw AddressError("local part ends with a dot") }
        return out
    }

    /// domain = dot-atom / domain-literal / obs-domain (CFWS around dots allowed).
    mutating func parseDomain() throws -> String {
        guard let first = peek else { throw AddressError("missing domain") }
        switch first {
        case .domainLiteral:
            pos += 1
            return tokens[pos - 1].text
        case .atom:
            break
        case .quoted:
            throw AddressError("domain cannot be a quoted string")
        default:
            throw AddressError("missing domain")
        }
        var out = tokens[pos].text
        pos += 1
        while peek == .dot {
            pos += 1
            guard peek == .atom else { throw AddressError("domain has an empty label") }
            out += "." + tokens[pos].text
            pos += 1
        }
        return out
    }

    /// A phrase as display text: words joined by one space where the value had white
    /// space or a comment, encoded words decoded, white space between two adjacent
    /// encoded words dropped (RFC 2047 6.2). "." is allowed (obs-phrase: `John Q. Public`).
    /// Nil when there is no phrase; `EmailAddress` validates and trims the result.
    func displayName(_ r: Range<Int>) throws -> String? {
        guard !r.isEmpty else { return nil }
        var out = ""
        var previousEncoded = false
        for k in r {
            let t = tokens[k]
            var text: String
            var encoded = false
            switch t.kind {
            case .atom:
                if let d = Self.decodedEncodedWord(Substring(t.text)) {
                    text = d
                    encoded = true
                } else {
                    text = t.text
                }
            case .quoted:
                text = Self.quotedPhraseText(t.text)
            default:
                text = "."
            }
            if k != r.lowerBound, t.spaceBefore, !(previousEncoded && encoded) { out += " " }
            out += text
            previousEncoded = encoded
        }
        return out
    }

    /// The decoded text when `word` is exactly one RFC 2047 encoded word, else nil.
    /// One `decodeWord` call is linear in the word, unlike scanning for many words.
    static func decodedEncodedWord(_ word: Substring) -> String? {
        guard word.hasPrefix("=?"), word.hasSuffix("?="),
              let (text, rest) = EncodedWords.decodeWord(word), rest.isEmpty else { return nil }
        return text
    }

    /// Quoted-string content for display. Folding inside a quoted display name leaves a
    /// tab after unfolding; it is shown as a space. RFC 2047 forbids encoded words inside
    /// quoted strings, but many mailers write them and every reader decodes them, so we do
    /// too: they are only ever shown, and the result is validated like any other name.
    static func quotedPhraseText(_ s: String) -> String {
        let text = s.contains("\t") ? s.replacingTabsWithSpaces() : s
        guard text.contains("=?") else { return text }
        var out = ""
        var pendingSpaces = 0
        var previousEncoded = false
        for (n, piece) in text.split(separator: " ", omittingEmptySubsequences: false).enumerated() {
            if n > 0 { pendingSpaces += 1 }
            if piece.isEmpty { continue }
            let decoded = decodedEncodedWord(piece)
            if !(previousEncoded && decoded != nil) {
                out += String(repeating: " ", count: pendingSpaces)
            }
            pendingSpaces = 0
            out += decoded ?? String(piece)
            previousEncoded = decoded != nil
        }
        return out + String(repeating: " ", count: pendingSpaces)
    }

    func unexpected(_ context: String) -> AddressError {
        guard pos < tokens.count else { return AddressError("unexpected end \(context)") }
        return AddressError("unexpected \(tokens[pos].kind.name) \(context)")
    }
}

extension String {
    func replacingTabsWithSpaces() -> String {
        String(String.UnicodeScalarView(unicodeScalars.map { $0 == "\t" ? " " : $0 }))
    }
}
