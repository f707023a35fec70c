// RFC 5322 section 2.2: the header section, kept as the exact bytes that arrived so a
// message nobody changed is written back byte for byte. Interpretation (unfolding,
// RFC 2047 decoding, address lists) is done on demand and never alters `raw`.

/// One header field exactly as it arrived: name, colon, value, folding and line endings.
public struct HeaderField: Sendable, Equatable {
    /// Every byte of the field, including continuation lines and the final line ending.
    public let raw: Bytes
    /// The field name as written (case preserved).
    public let name: String
    /// Offset in `raw` of the first byte after the colon.
    let valueStart: Int

    init(raw: Bytes, name: String, valueStart: Int) {
        self.raw = raw
        self.name = name
        self.valueStart = valueStart
    }

    /// Builds a new field `Name: value` with the given line ending. The caller guarantees
    /// the value holds no line breaks; `HeaderField.make` checks that.
    public static func make(name: String, value: String, lineEnding: Bytes = [0x0D, 0x0A]) throws -> HeaderField {
        guard !name.isEmpty, name.utf8.allSatisfy(ASCII.isFieldNameByte) else {
            throw MessageError.invalidField("header field name \"\(name)\" is not valid")
        }
        guard !value.utf8.contains(where: { $0 == ASCII.cr || $0 == ASCII.lf || $0 == ASCII.nul }) else {
            throw MessageError.invalidField("value for \(name) contains a line break or NUL")
        }
        let raw = Array(name.utf8) + [ASCII.colon, ASCII.space] + Array(value.utf8) + lineEnding
        return HeaderField(raw: raw, name: name, valueStart: name.utf8.count + 1)
    }

    /// True when the field's name equals `other`, ignoring ASCII case.
    public func hasName(_ other: String) -> Bool {
        name.utf8.count == other.utf8.count && name.utf8.elementsEqual(other.utf8) { ASCII.lower($0) == ASCII.lower($1) }
    }

    /// True when the name starts with `prefix` (ASCII, any case) and is longer.
    /// No allocation: this runs for every field of every message.
    public func hasNamePrefix(_ prefix: String) -> Bool {
        name.utf8.count > prefix.utf8.count && name.utf8.prefix(prefix.utf8.count).elementsEqual(prefix.utf8) { ASCII.lower($0) == ASCII.lower($1) }
    }

    /// The value bytes after the colon, with folding intact and no final line ending.
    public var rawValue: ArraySlice<UInt8> {
        let end = raw.count - raw.lineTerminatorLength
        return raw[min(valueStart, end)..<end]
    }

    /// The value unfolded (RFC 5322 3.2.2: CRLF followed by WSP is removed, keeping the
    /// WSP) with leading and trailing white space trimmed. Not RFC 2047 decoded.
    public var unfoldedValue: String {
        var out = Bytes()
        out.reserveCapacity(rawValue.count)
        for b in rawValue where b != ASCII.cr && b != ASCII.lf { out.append(b) }
        return String(lenientUTF8: out).trimmingWSP()
    }

    /// The value unfolded and with RFC 2047 encoded words decoded, for display and for
    /// unstructured fields such as Subject.
    public var decodedValue: String { EncodedWords.decode(unfoldedValue) }
}

/// The header section of a message or MIME entity.
public struct HeaderSection: Sendable, Equatable {
    public var fields: [HeaderField]
    /// The empty line that ended the section ("\r\n" or "\n"), or empty when the input
    /// had no separator (a message of headers only, or a body that began without one).
    public var separator: Bytes
    /// The line ending new fields are written with: the one the section already uses.
    public var lineEnding: Bytes

    public init(fields: [HeaderField] = [], separator: Bytes = [0x0D, 0x0A], lineEnding: Bytes = [0x0D, 0x0A]) {
        self.fields = fields
        self.separator = separator
        self.lineEnding = lineEnding
    }

    /// All bytes of the section, separator included, exactly as they will be written.
    public var bytes: Bytes {
        var out = Bytes()
        out.reserveCapacity(fields.reduce(separator.count) { $0 + $1.raw.count })
        for f in fields { out += f.raw }
        out += separator
        return out
    }

    public func first(_ name: String) -> HeaderField? { fields.first { $0.hasName(name) } }
    public func all(_ name: String) -> [HeaderField] { fields.filter { $0.hasName(name) } }
    public subscript(name: String) -> String? { first(name)?.unfoldedValue }

    public mutating func remove(where predicate: (HeaderField) -> Bool) {
        fields.removeAll(where: predicate)
    }

    public mutating func remove(_ name: String) { remove { $0.hasName(name) } }

    /// Adds `Name: value` at the top (`atTop`) or the bottom, in this section's line ending.
    public mutating func add(_ name: String, _ value: String, atTop: Bool = false) throws {
        let f = try HeaderField.make(name: name, value: value, lineEnding: lineEnding)
        if atTop { fields.insert(f, at: 0) } else { fields.append(f) }
    }

    /// Replaces the first field called `name` in place (or appends one).
    public mutating func set(_ name: String, _ value: String) throws {
        let f = try HeaderField.make(name: name, value: value, lineEnding: lineEnding)
        if let i = fields.firstIndex(where: { $0.hasName(name) }) {
            fields[i] = f
            fields.removeAll { $0.hasName(name) && $0 != f }
        } else {
            fields.append(f)
        }
    }
}

extension HeaderSection {
    /// Largest header section accepted. Big enough for a 1 MB folded line and tens of
    /// thousands of recipients; small enough that a hostile sender cannot make us hold
    /// an unbounded amount in memory (bodies are spooled, headers are not).
    public static let maximumSize = 16 << 20

    /// Result of scanning the start of an entity for its header section.
    public struct Scan {
        public var header: HeaderSection
        /// Offset of the first body byte in the scanned input.
        public var bodyStart: Int
    }

    /// What the line starting a piece of input is, as far as the header section goes.
    public enum LineKind: Sendable { case separator, field, continuation, other }

    /// Classifies a line (or the first piece of a long line) of a header section. Shared
    /// by the in-memory parser and the streaming reader so they always agree.
    public static func kind<C: Collection>(ofLine line: C) -> LineKind where C.Element == UInt8, C.Index == Int {
        if line.elementsEqual([ASCII.lf]) || line.elementsEqual([ASCII.cr, ASCII.lf]) { return .separator }
        guard let first = line.first else { return .other }
        if ASCII.isWSP(first) { return .continuation }
        var j = line.startIndex
        while j < line.endIndex && ASCII.isFieldNameByte(line[j]) { j += 1 }
        guard j > line.startIndex else { return .other }
        while j < line.endIndex && ASCII.isWSP(line[j]) { j += 1 }
        return j < line.endIndex && line[j] == ASCII.colon ? .field : .other
    }

    /// Whether the start of a line (a piece of it, without its line end) already
    /// decides what `kind(ofLine:)` says of the whole line. Not while it holds only
    /// field-name bytes and white space after them: a colon may still come, making it
    /// a field. The streaming reader, which gets long lines in pieces, reads on until
    /// this holds, so that it and `scan` agree.
    public static func isKindDecided<C: Collection>(byLineStart start: C) -> Bool where C.Element == UInt8, C.Index == Int {
        guard let first = start.first else { return false }
        if ASCII.isWSP(first) { return true }
        if first == ASCII.cr { return start.count > 1 }      // "\r" may be half of "\r\n"
        var j = start.startIndex
        while j < start.endIndex && ASCII.isFieldNameByte(start[j]) { j += 1 }
        guard j > start.startIndex else { return true }
        while j < start.endIndex && ASCII.isWSP(start[j]) { j += 1 }
        return j < start.endIndex
    }

    /// Parses a header section from the start of `bytes`. Lenient the way Postfix is:
    /// the section ends at the first empty line, or at the first line that is neither a
    /// field nor a continuation of one (that line then begins the body, and `separator`
    /// is empty). See VIOLATIONS.md.
    public static func scan(_ bytes: ArraySlice<UInt8>) throws -> Scan {
        var fields: [HeaderField] = []
        var lineEnding: Bytes?
        var i = bytes.startIndex
        var fieldStart: Int?

        func finishField(at end: Int) {
            guard let start = fieldStart else { return }
            let raw = Array(bytes[start..<end])
            var nameEnd = 0
            while nameEnd < raw.count && ASCII.isFieldNameByte(raw[nameEnd]) { nameEnd += 1 }
            let colon = raw[nameEnd...].firstIndex(of: ASCII.colon)!
            fields.append(HeaderField(raw: raw, name: String(decoding: raw[..<nameEnd], as: UTF8.self), valueStart: colon + 1))
            fieldStart = nil
        }

        while i < bytes.endIndex {
            let next = bytes[i...].firstIndex(of: ASCII.lf).map { $0 + 1 } ?? bytes.endIndex
            let line = bytes[i..<next]
            if lineEnding == nil, line.lineTerminatorLength > 0 {
                lineEnding = line.lineTerminatorLength == 2 ? [ASCII.cr, ASCII.lf] : [ASCII.lf]
            }
            let kind = kind(ofLine: line)
            if kind == .separator {
                finishField(at: i)
                let h = HeaderSection(fields: fields, separator: Array(line), lineEnding: lineEnding ?? Array(line))
                return Scan(header: h, bodyStart: next)
            }
            if kind == .other || (kind == .continuation && fieldStart == nil) { break }
            if line.contains(ASCII.nul) { throw MessageError.malformed("NUL byte in the header section") }
            if kind == .field { finishField(at: i); fieldStart = i }
            i = next
        }
        finishField(at: i)
        let h = HeaderSection(fields: fields, separator: [], lineEnding: lineEnding ?? [ASCII.cr, ASCII.lf])
        return Scan(header: h, bodyStart: i)
    }

    /// Parses a complete header section (no body follows) or throws.
    public static func parse(_ bytes: Bytes) throws -> HeaderSection {
        try scan(bytes[...]).header
    }
}

extension String {
    func trimmingWSP() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}

extension HeaderSection {
    /// Removes the first case-insensitive occurrence of the ASCII `text` from the raw
    /// value of field `name` (and one space next to it), keeping everything else of the
    /// field byte for byte. Used to take a subject trigger such as `+encrypt+` out.
    /// Text inside an RFC 2047 encoded word is left alone.
    public mutating func removeText(_ text: String, fromField name: String) {
        guard let i = fields.firstIndex(where: { $0.hasName(name) }) else { return }
        let f = fields[i]
        let needle = Array(text.lowercased().utf8)
        guard !needle.isEmpty else { return }
        let raw = f.raw
        let lower = raw.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }
        var k = f.valueStart
        while k + needle.count <= raw.count {
            if lower[k..<k + needle.count].elementsEqual(needle) {
                var start = k, end = k + needle.count
                if end < raw.count && raw[end] == ASCII.space { end += 1 }
                else if start > f.valueStart + 1 && raw[start - 1] == ASCII.space { start -= 1 }
                var newRaw = Array(raw[..<start]) + raw[end...]
                // keep "Subject: " readable when the trigger was the whole value
                if newRaw.count == f.valueStart + raw.lineTerminatorLength { newRaw.insert(ASCII.space, at: f.valueStart) }
                fields[i] = HeaderField(raw: newRaw, name: f.name, valueStart: f.valueStart)
                return
            }
            k += 1
        }
    }
}
