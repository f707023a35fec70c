// Building new MIME entities for the tools that sign and encrypt (RFC 1847, RFC 3156,
// RFC 8551). Output is canonical (RFC 2045 / 2046 / 2049): CRLF line ends everywhere,
// header fields folded to at most 78 characters where white space allows, bodies
// encoded so no line exceeds 76 characters, and multipart boundaries chosen at random
// and checked not to occur in the parts.

public enum MIMEBuilder {
    static let crlf: Bytes = [ASCII.cr, ASCII.lf]

    /// A leaf entity. `body` is the content before transfer encoding:
    /// - `.base64`: any bytes.
    /// - `.quotedPrintable`: text (`text/*`, LF or CRLF line ends become CRLF) or, for
    ///   other types, any bytes with CR and LF encoded so they come back exactly.
    /// - `.sevenBit` / `.eightBit`: line ends are made CRLF; throws
    ///   `MessageError.malformed` if the body has NUL, a bare CR, a line over 998
    ///   characters, or (7bit) any byte above 127.
    /// - `.binary` is refused: it cannot be signed or sent over SMTP without BINARYMIME.
    /// The header holds Content-Type, Content-Transfer-Encoding, then `extraFields` in
    /// order (throws `MessageError.invalidField` for a bad name or a value with a line
    /// break). No MIME-Version: that belongs to the top-level message only.
    public static func leaf(contentType: ContentType, transferEncoding: TransferEncoding, body: Bytes,
                            extraFields: [(String, String)] = []) throws -> MIMEEntity {
        let encoded: Bytes
        switch transferEncoding {
        case .base64:
            encoded = TransferEncoding.encodeBase64(body)
        case .quotedPrintable:
            encoded = TransferEncoding.encodeQuotedPrintable(body, textMode: contentType.type.lowercased() == "text")
        case .sevenBit, .eightBit:
            encoded = try checkedLines(body, sevenBit: transferEncoding == .sevenBit)
        case .binary:
            throw MessageError.malformed("the builder does not write binary transfer encoding")
        }
        var out = Bytes()
        try appendField("Content-Type", contentType.headerValue, to: &out)
        try appendField("Content-Transfer-Encoding", transferEncoding.rawValue, to: &out)
        for (name, value) in extraFields { try appendField(name, value, to: &out) }
        out += crlf
        out += encoded
        return try MIMEEntity.parse(out)
    }

    /// A multipart entity of `subtype` (mixed, alternative, signed, encrypted, ...) with
    /// `parameters` (protocol, micalg, ...) and a fresh boundary, which replaces any
    /// boundary in `parameters`. The parts are written with CRLF line ends
    /// (`canonicalCRLF()`), with no preamble or epilogue.
    public static func multipart(subtype: String, parameters: [String: String] = [:], parts: [MIMEEntity],
                                 extraFields: [(String, String)] = []) throws -> MIMEEntity {
        let partBytes = parts.map { $0.canonicalCRLF().serialized() }
        var boundary = makeBoundary()
        // 24 random base32 characters make a collision practically impossible, but the
        // parts may be attacker-supplied, so check rather than trust.
        while partBytes.contains(where: { contains($0, Array(boundary.utf8)) }) { boundary = makeBoundary() }

        var params = parameters
        for key in params.keys where key.lowercased() == "boundary" { params[key] = nil }
        params["boundary"] = boundary
        let contentType = ContentType(type: "multipart", subtype: subtype, parameters: params)

        var out = Bytes()
        try appendField("Content-Type", contentType.headerValue, to: &out)
        for (name, value) in extraFields { try appendField(name, value, to: &out) }
        out += crlf
        let dashes: Bytes = [UInt8(ascii: "-"), UInt8(ascii: "-")]
        for (i, p) in partBytes.enumerated() {
            if i > 0 { out += crlf }
            out += dashes + Array(boundary.utf8) + crlf
            out += p
        }
        out += crlf + dashes + Array(boundary.utf8) + dashes + crlf
        return try MIMEEntity.parse(out)
    }

    /// "=_sl_" and 24 random base32 characters. `=_` cannot occur in base64 or in
    /// quoted-printable output, and the boundary is a valid RFC 2046 bchars string.
    public static func makeBoundary() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var rng = SystemRandomNumberGenerator()
        return "=_sl_" + String((0..<24).map { _ in alphabet[Int(rng.next(upperBound: UInt8(alphabet.count)))] })
    }

    // MARK: Helpers

    static func contains(_ haystack: Bytes, _ needle: Bytes) -> Bool {
        guard let first = needle.first, haystack.count >= needle.count else { return needle.isEmpty }
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }

    /// Appends `Name: value` CRLF, folded before white space so lines stay within 78
    /// characters where the value allows it.
    static func appendField(_ name: String, _ value: String, to out: inout Bytes) throws {
        let field = try HeaderField.make(name: name, value: value)   // validates both
        out += fold(Bytes(field.raw.dropLast(2)))
        out += crlf
    }

    /// RFC 5322 2.2.3 folding: a CRLF is inserted before a space or tab. Never folds
    /// where the new line would hold only white space, so no line is left blank.
    static func fold(_ line: Bytes, limit: Int = 78) -> Bytes {
        guard line.count > limit else { return line }
        var out = Bytes()
        var lineStart = 0
        var lastBreak: Int?          // index of a WSP we may fold before
        var i = 0
        while i < line.count {
            if ASCII.isWSP(line[i]), i > lineStart, !ASCII.isWSP(line[i - 1]) { lastBreak = i }
            if i - lineStart >= limit, let b = lastBreak, b > lineStart {
                out += line[lineStart..<b]
                out += crlf
                lineStart = b
                lastBreak = nil
            }
            i += 1
        }
        out += line[lineStart...]
        return out
    }

    /// Line ends made CRLF, then checked for what 7bit/8bit data may not contain
    /// (RFC 2045 2.7 and 2.8).
    static func checkedLines(_ body: Bytes, sevenBit: Bool) throws -> Bytes {
        let text = MIMEEntity.crlf(body[...])
        var lineLength = 0
        for (i, b) in text.enumerated() {
            if b == ASCII.nul { throw MessageError.malformed("body has a NUL byte; use base64") }
            if sevenBit && b > 0x7F { throw MessageError.malformed("body has 8-bit bytes; use quoted-printable or base64") }
            if b == ASCII.cr && (i + 1 >= text.count || text[i + 1] != ASCII.lf) {
                throw MessageError.malformed("body has a bare CR; use quoted-printable or base64")
            }
            if b == ASCII.lf { lineLength = 0; continue }
            lineLength += 1
            if lineLength > 999 { throw MessageError.malformed("body has a line over 998 characters; use quoted-printable or base64") }
        }
        return text
    }
}

extension MIMEEntity {
    /// A copy with every line end CRLF (RFC 2049 canonical form), which signing and
    /// encryption need: signatures are over the canonical bytes. Header fields, header
    /// separators, preamble, delimiters, epilogue and bodies are converted; a header
    /// section with no separator gets one. Bodies declared `binary` are left alone (their
    /// LFs are data); encode such parts before signing. Bare CRs are left as they are.
    public func canonicalCRLF() -> MIMEEntity {
        var e = self
        let fields = header.fields.map { f -> HeaderField in
            var raw = MIMEEntity.crlf(f.raw[...])
            if raw.lineTerminatorLength == 0 { raw += [ASCII.cr, ASCII.lf] }
            return HeaderField(raw: raw, name: f.name, valueStart: f.valueStart)
        }
        e.header = HeaderSection(fields: fields, separator: [ASCII.cr, ASCII.lf], lineEnding: [ASCII.cr, ASCII.lf])
        e.preamble = MIMEEntity.crlf(preamble[...])
        e.epilogue = MIMEEntity.crlf(epilogue[...])
        if transferEncoding != "binary" { e.body = MIMEEntity.crlf(body[...]) }
        if case .multipart(let boundary, let delimiters, let close) = layout {
            e.layout = .multipart(boundary: boundary, delimiters: delimiters.map { MIMEEntity.crlf($0[...]) },
                                  close: close.map { MIMEEntity.crlf($0[...]) })
        }
        e.parts = parts.map { $0.canonicalCRLF() }
        return e
    }

    /// Every LF not already preceded by CR gets one.
    static func crlf(_ bytes: ArraySlice<UInt8>) -> Bytes {
        var out = Bytes()
        out.reserveCapacity(bytes.count + bytes.count / 32)
        var previous: UInt8 = 0
        for b in bytes {
            if b == ASCII.lf && previous != ASCII.cr { out.append(ASCII.cr) }
            out.append(b)
            previous = b
        }
        return out
    }
}
