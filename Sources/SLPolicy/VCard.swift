// vCard files (RFC 6350, and the vCard 3 / 2.1 forms address-book exporters still
// write). Address books are user-edited or exported files, so everything here is
// untrusted text: the parser never trusts a length, never force-unwraps, and reports
// problems with the physical line number so the user can find and fix them.
import SLMessage

/// A syntax problem in a vCard file, or a property whose value we cannot use.
public struct VCardError: Error, Equatable, CustomStringConvertible {
    /// 1-based physical line in the file where the offending content line begins.
    public let line: Int
    public let message: String

    public init(line: Int, _ message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { "line \(line): \(message)" }
}

/// One content line: `[group.]NAME[;PARAM=v1,v2...]:value`.
public struct VCardProperty: Sendable, Equatable {
    public var group: String?
    /// Upper-cased, because vCard names are case-insensitive.
    public var name: String
    /// Keys upper-cased; values as written, after RFC 6868 ^-decoding and unquoting.
    /// A parameter given twice (`TYPE=a;TYPE=b`) collects both values.
    public var parameters: [String: [String]]
    /// The value exactly as written (after unfolding): text escapes are NOT decoded,
    /// because whether `\,` or `;` mean anything depends on the property's type.
    /// Use `text` for single text values.
    public var value: String
    /// Physical line where the property began, for error messages; 0 when built in code.
    public var line: Int

    public init(group: String? = nil, name: String, parameters: [String: [String]] = [:],
                value: String, line: Int = 0) {
        self.group = group
        self.name = name.uppercased()
        var upper: [String: [String]] = [:]
        for (k, v) in parameters { upper[k.uppercased(), default: []] += v }
        self.parameters = upper
        self.value = value
        self.line = line
    }

    /// A property holding one text value, escaped as RFC 6350 3.4 requires.
    public init(group: String? = nil, name: String, parameters: [String: [String]] = [:], text: String) {
        self.init(group: group, name: name, parameters: parameters, value: VCardProperty.escapeText(text))
    }

    /// The values of parameter `name` (case-insensitive), or [] when absent.
    public func parameter(_ name: String) -> [String] { parameters[name.uppercased()] ?? [] }

    /// True when parameter `name` has a value equal to `value`, ignoring case.
    public func parameter(_ name: String, contains value: String) -> Bool {
        parameter(name).contains { $0.equalsIgnoringCase(value) }
    }

    /// The value read as one text value: `\n` `\,` `\;` `\\` decoded (RFC 6350 3.4).
    public var text: String { VCardProperty.unescapeText(value) }

    public static func escapeText(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        var previousCR = false
        for u in s.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case ",": out += "\\,"
            case ";": out += "\\;"
            case "\r": out += "\\n"
            // CRLF is one line break, not two.
            case "\n": if !previousCR { out += "\\n" }
            default: out.unicodeScalars.append(u)
            }
            previousCR = u == "\r"
        }
        return out
    }

    public static func unescapeText(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out = ""
        var escaped = false
        for u in s.unicodeScalars {
            if escaped {
                // vCard 3 writers use \N as well as \n; any other escaped character
                // stands for itself, the lenient reading of a writer's mistake.
                out.unicodeScalars.append(u == "n" || u == "N" ? "\n" : u)
                escaped = false
            } else if u == "\\" {
                escaped = true
            } else {
                out.unicodeScalars.append(u)
            }
        }
        if escaped { out += "\\" }
        return out
    }
}

extension String {
    func equalsIgnoringCase(_ other: String) -> Bool {
        lowercased() == other.lowercased()
    }
}

/// One BEGIN:VCARD ... END:VCARD block. BEGIN, END are structure, not properties;
/// VERSION is kept as a property.
public struct VCard: Sendable, Equatable {
    public var properties: [VCardProperty]
    /// Physical line of BEGIN:VCARD; 0 when built in code.
    public var line: Int

    public init(properties: [VCardProperty] = [], line: Int = 0) {
        self.properties = properties
        self.line = line
    }

    /// Properties named `name` (case-insensitive), in file order.
    public func properties(named name: String) -> [VCardProperty] {
        let upper = name.uppercased()
        return properties.filter { $0.name == upper }
    }

    /// Parses every vCard in a file. Blank lines between cards are allowed; any other
    /// content outside BEGIN:VCARD/END:VCARD is an error, since it usually means a
    /// damaged file whose contacts would otherwise silently vanish.
    public static func parse(_ bytes: [UInt8]) throws -> [VCard] {
        var cards: [VCard] = []
        var current: VCard?
        for logical in try unfold(bytes) {
            if logical.bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            let property = try parseContentLine(logical.bytes, line: logical.line)
            let word = property.value.trimmingSpaces.uppercased()
            switch property.name {
            case "BEGIN":
                guard word == "VCARD" else {
                    throw VCardError(line: logical.line, "BEGIN:\(property.value) is not a vCard; only BEGIN:VCARD blocks belong in an address book")
                }
                if let open = current {
                    throw VCardError(line: logical.line, "BEGIN:VCARD inside the vCard that begins on line \(open.line); add the missing END:VCARD before this line")
                }
                current = VCard(line: logical.line)
            case "END":
                guard let open = current else {
                    throw VCardError(line: logical.line, "END:\(property.value) without a matching BEGIN:VCARD")
                }
                guard word == "VCARD" else {
                    throw VCardError(line: logical.line, "END:\(property.value) inside the vCard that begins on line \(open.line); expected END:VCARD")
                }
                cards.append(open)
                current = nil
            default:
                guard current != nil else {
                    throw VCardError(line: logical.line, "\(property.name) outside BEGIN:VCARD ... END:VCARD; move it into a vCard or delete it")
                }
                current?.properties.append(property)
            }
        }
        if let open = current {
            throw VCardError(line: open.line, "the vCard that begins here has no END:VCARD; add END:VCARD after its last property")
        }
        return cards
    }

    /// Joins folded lines (RFC 6350 3.2: a line break followed by one space or tab).
    /// Works on bytes so a fold in the middle of a UTF-8 sequence, which some writers
    /// produce, still reassembles into valid text.
    static func unfold(_ bytes: [UInt8]) throws -> [(line: Int, bytes: [UInt8])] {
        var body = bytes[...]
        if body.hasBytePrefix("\u{FEFF}") { body = body.dropFirst(3) }
        var result: [(line: Int, bytes: [UInt8])] = []
        var lineNumber = 0
        var start = body.startIndex
        while start < body.endIndex {
            lineNumber += 1
            let lf = body[start...].firstIndex(of: 0x0A) ?? body.endIndex
            var end = lf
            if end > start && body[end - 1] == 0x0D { end -= 1 }
            let physical = body[start..<end]
            start = lf < body.endIndex ? lf + 1 : lf
            if let first = physical.first, first == 0x20 || first == 0x09 {
                if result.isEmpty {
                    if physical.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
                    throw VCardError(line: lineNumber, "the file starts with an indented line, which vCard reads as the continuation of a previous line; remove the leading whitespace")
                }
                result[result.count - 1].bytes += physical.dropFirst()
            } else {
                result.append((lineNumber, Array(physical)))
            }
        }
        return result
    }

    private static func isNameByte(_ b: UInt8) -> Bool {
        // RFC 6350 allows ALPHA / DIGIT / "-"; "_" tolerated because real exporters use it.
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39)
            || b == 0x2D || b == 0x5F
    }

    static func parseContentLine(_ b: [UInt8], line: Int) throws -> VCardProperty {
        var i = 0
        func readName() -> String {
            let s = i
            while i < b.count && isNameByte(b[i]) { i += 1 }
            return String(decoding: b[s..<i], as: UTF8.self)
        }
        func shown() -> String {
            String(lenientUTF8: b.prefix(40)) + (b.count > 40 ? "..." : "")
        }
        var name = readName()
        guard !name.isEmpty else {
            throw VCardError(line: line, "expected a property such as NAME:value, found \"\(shown())\"")
        }
        var group: String?
        if i < b.count && b[i] == UInt8(ascii: ".") {
            i += 1
            group = name
            name = readName()
            guard !name.isEmpty else {
                throw VCardError(line: line, "group \"\(group ?? "")\" is not followed by a property name")
            }
        }
        let upperName = name.uppercased()
        var parameters: [String: [String]] = [:]
        while i < b.count && b[i] == UInt8(ascii: ";") {
            i += 1
            let key = readName().uppercased()
            guard !key.isEmpty else {
                throw VCardError(line: line, "\(upperName) has an empty or invalid parameter name after ';'")
            }
            guard i < b.count && b[i] == UInt8(ascii: "=") else {
                // vCard 2.1 bare parameters (KEY;PGP;BASE64:...): a bare word is a TYPE,
                // except the encodings, which vCard 3 spells ENCODING=.
                let encodings: Set<String> = ["B", "BASE64", "QUOTED-PRINTABLE", "8BIT", "7BIT"]
                parameters[encodings.contains(key) ? "ENCODING" : "TYPE", default: []].append(key)
                continue
            }
            i += 1
            while true {
                var raw: ArraySlice<UInt8>
                if i < b.count && b[i] == UInt8(ascii: "\"") {
                    i += 1
                    let s = i
                    while i < b.count && b[i] != UInt8(ascii: "\"") { i += 1 }
                    guard i < b.count else {
                        throw VCardError(line: line, "parameter \(key) of \(upperName) has an opening quote but no closing quote")
                    }
                    raw = b[s..<i]
                    i += 1
                } else {
                    let s = i
                    while i < b.count, ![UInt8(ascii: ";"), UInt8(ascii: ":"), UInt8(ascii: ","),
                                         UInt8(ascii: "\"")].contains(b[i]) { i += 1 }
                    raw = b[s..<i]
                }
                parameters[key, default: []].append(caretDecode(raw))
                if i < b.count && b[i] == UInt8(ascii: ",") { i += 1; continue }
                break
            }
            if i < b.count && b[i] != UInt8(ascii: ";") && b[i] != UInt8(ascii: ":") {
                throw VCardError(line: line, "unexpected \"\(Character(Unicode.Scalar(b[i])))\" in parameter \(key) of \(upperName); quote values containing ; : , (PARAM=\"a;b\")")
            }
        }
        guard i < b.count && b[i] == UInt8(ascii: ":") else {
            throw VCardError(line: line, "\(upperName) has no ':' separating it from its value")
        }
        return VCardProperty(group: group, name: upperName, parameters: parameters,
                             value: String(lenientUTF8: b[(i + 1)...]), line: line)
    }

    /// RFC 6868: ^n is a newline, ^' a double quote, ^^ a caret; any other ^ is literal.
    private static func caretDecode(_ raw: ArraySlice<UInt8>) -> String {
        guard raw.contains(UInt8(ascii: "^")) else { return String(lenientUTF8: raw) }
        var out = [UInt8]()
        var i = raw.startIndex
        while i < raw.endIndex {
            let c = raw[i]
            if c == UInt8(ascii: "^"), i + 1 < raw.endIndex {
                switch raw[i + 1] {
                case UInt8(ascii: "n"), UInt8(ascii: "N"): out.append(0x0A); i += 2; continue
                case UInt8(ascii: "'"): out.append(UInt8(ascii: "\"")); i += 2; continue
                case UInt8(ascii: "^"): out.append(c); i += 2; continue
                default: break
                }
            }
            out.append(c)
            i += 1
        }
        return String(lenientUTF8: out)
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
