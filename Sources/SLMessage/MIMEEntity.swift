// RFC 2045/2046: a MIME entity (a message or a body part) and its tree of parts, parsed
// from bytes in memory. Like HeaderSection, the entity keeps every byte it was parsed
// from (delimiter lines with their transport padding and line endings, preamble,
// epilogue, a missing close delimiter) so an unchanged tree serialises to exactly the
// input. That matters for signatures: a multipart/signed part that changed by one byte
// no longer verifies.
//
// Parsing is lenient (broken multiparts are common and some are crafted to make
// scanners and mail clients disagree) but bounded: nesting deeper than `maxDepth`
// throws instead of recursing without limit.

public struct MIMEEntity: Sendable {
    public var header: HeaderSection
    /// From the header; RFC 2045 5.2 default `text/plain; charset=us-ascii`, or
    /// message/rfc822 for a part of a multipart/digest (RFC 2046 5.1.5). Serialisation
    /// writes `header`, so changing this alone does not change the output.
    public var contentType: ContentType
    /// For a leaf, the body still transfer-encoded, exactly as it arrived. Empty for a
    /// multipart and for an encapsulated message (their content is in `parts`).
    public var body: Bytes
    /// Multipart only: bytes before the first delimiter line (not including the line
    /// break in front of that delimiter, which belongs to it: RFC 2046 5.1.1).
    public var preamble: Bytes
    /// Multipart only: bytes after the close delimiter line.
    public var epilogue: Bytes
    /// The parts of a multipart, or the one inner message of a message/rfc822 entity.
    public var parts: [MIMEEntity]

    /// How the body is laid out, with the exact delimiter bytes for a multipart.
    enum Layout: Sendable, Equatable {
        case leaf
        /// `delimiters[i]` precedes `parts[i]`: the line break before the delimiter line
        /// (absent right after the header or another delimiter), `--boundary`, transport
        /// padding, and the delimiter line's own line break. `close` likewise, or nil
        /// when the input ended without a close delimiter.
        case multipart(boundary: Bytes, delimiters: [Bytes], close: Bytes?)
        /// message/rfc822 whose body was parsed as `parts[0]`.
        case encapsulated
    }

    var layout: Layout

    /// Maximum nesting any caller may ask for: each level is one stack frame of the
    /// parser, and test and dispatch threads can have small stacks.
    public static let depthLimit = 128

    /// True when this entity is a multipart whose body was split into parts.
    public var isMultipart: Bool {
        if case .multipart = layout { return true }
        return false
    }

    /// True when this is a message/rfc822 entity whose inner message is `parts[0]`.
    public var isEncapsulatedMessage: Bool { layout == .encapsulated }

    /// The Content-Transfer-Encoding, lowercased, first token only; "7bit" when absent.
    public var transferEncoding: String {
        TransferEncoding.normalise(header["Content-Transfer-Encoding"] ?? "")
    }

    /// The Content-Disposition, if the entity has one.
    public var contentDisposition: ContentDisposition? {
        header["Content-Disposition"].map(ContentDisposition.init(parsing:))
    }

    // MARK: Parsing

    /// Parses an entity and all its parts. Throws `MessageError.malformed` when
    /// containers nest deeper than `maxDepth` (at most `depthLimit`) or a header section
    /// is unusable (a NUL byte in it, as `HeaderSection.scan` decides). Everything else
    /// parses, leniently:
    /// - multipart without a boundary parameter: a leaf;
    /// - boundary never found: the whole body is the preamble, no parts;
    /// - no close delimiter: the last part runs to the end, empty epilogue;
    /// - LF, CRLF and mixtures are all line ends; a bare CR is data;
    /// - message/rfc822 with an identity transfer encoding: the inner message is
    ///   `parts[0]`; with any other encoding (not allowed, but seen) it stays a leaf.
    /// A multipart's own Content-Transfer-Encoding is ignored (RFC 2045 6.4 allows only
    /// identity encodings there), as mail clients do, so a scanner sees what they show.
    public static func parse(_ bytes: Bytes, maxDepth: Int = 64) throws -> MIMEEntity {
        try parse(bytes[...], depth: 0, maxDepth: min(maxDepth, depthLimit), defaultType: .defaultPlain)
    }

    static func parse(_ bytes: ArraySlice<UInt8>, depth: Int, maxDepth: Int, defaultType: ContentType) throws -> MIMEEntity {
        guard depth <= maxDepth else {
            throw MessageError.malformed("MIME nesting deeper than \(maxDepth) levels")
        }
        let scan = try HeaderSection.scan(bytes)
        let header = scan.header
        let contentType = header.first("Content-Type").map { ContentType(parsing: $0.unfoldedValue) } ?? defaultType
        let content = bytes[scan.bodyStart...]
        var entity = MIMEEntity(header: header, contentType: contentType, body: [], preamble: [], epilogue: [],
                                parts: [], layout: .leaf)

        if contentType.isMultipart, let boundary = contentType.boundary {
            let split = MultipartSplit(content, boundary: Array(boundary.utf8))
            let childDefault: ContentType = contentType.subtype == "digest" ? .defaultDigestPart : .defaultPlain
            entity.preamble = Array(split.preamble)
            entity.epilogue = Array(split.epilogue)
            entity.parts = try split.parts.map {
                try parse($0, depth: depth + 1, maxDepth: maxDepth, defaultType: childDefault)
            }
            entity.layout = .multipart(boundary: Array(boundary.utf8), delimiters: split.delimiters, close: split.close)
        } else if contentType.mimeType == "message/rfc822", entity.transferEncodingValue?.isIdentity ?? false {
            entity.parts = [try parse(content, depth: depth + 1, maxDepth: maxDepth, defaultType: .defaultPlain)]
            entity.layout = .encapsulated
        } else {
            entity.body = Array(content)
        }
        return entity
    }

    var transferEncodingValue: TransferEncoding? { TransferEncoding(rawValue: transferEncoding) }

    init(header: HeaderSection, contentType: ContentType, body: Bytes, preamble: Bytes, epilogue: Bytes,
         parts: [MIMEEntity], layout: Layout) {
        self.header = header
        self.contentType = contentType
        self.body = body
        self.preamble = preamble
        self.epilogue = epilogue
        self.parts = parts
        self.layout = layout
    }

    // MARK: Output

    /// The entity as bytes: header section, then the body, preamble, delimiters, parts
    /// and epilogue as they were parsed. A part appended after parsing gets a delimiter
    /// in the header's line ending; if parts were removed, the delimiters of the first
    /// ones are reused.
    public func serialized() -> Bytes {
        var out = Bytes()
        write(to: &out)
        return out
    }

    func write(to out: inout Bytes) {
        for f in header.fields { out += f.raw }
        out += header.separator
        writeBody(to: &out)
    }

    /// Everything after the header section.
    func writeBody(to out: inout Bytes) {
        switch layout {
        case .leaf:
            out += body
        case .encapsulated:
            for p in parts { p.write(to: &out) }
        case .multipart(let boundary, let delimiters, let close):
            out += preamble
            let eol = header.lineEnding
            for (i, part) in parts.enumerated() {
                if i < delimiters.count {
                    out += delimiters[i]
                } else {
                    out += eol + [UInt8(ascii: "-"), UInt8(ascii: "-")] + boundary + eol
                }
                part.write(to: &out)
            }
            if let close { out += close }
            out += epilogue
        }
    }

    /// The body with its Content-Transfer-Encoding undone (leniently: invalid base64
    /// characters are skipped, bad quoted-printable escapes kept). For a multipart or an
    /// encapsulated message, the body bytes as they would be written, undecoded. Throws
    /// `MessageError.malformed` for an encoding this code does not know.
    public func decodedBody() throws -> Bytes {
        if layout != .leaf {
            var out = Bytes()
            writeBody(to: &out)
            return out
        }
        guard let encoding = transferEncodingValue else {
            throw MessageError.malformed("unknown Content-Transfer-Encoding \"\(MIMEEntity.printable(transferEncoding))\"")
        }
        return encoding.decode(body)
    }

    /// Attacker text made safe to put in an error message: printable ASCII, bounded.
    static func printable(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.prefix(40).map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? $0 : "?" }))
    }
}

/// The pieces of a multipart body (RFC 2046 5.1.1), as slices of it. Delimiter lines are
/// recognised strictly (`--boundary`, optional `--`, optional white space, line end or
/// end of input), which is what the RFC grammar and the major clients do; anything
/// else on the line makes it ordinary content.
struct MultipartSplit {
    var preamble: ArraySlice<UInt8>
    var delimiters: [Bytes] = []
    var parts: [ArraySlice<UInt8>] = []
    var close: Bytes?
    var epilogue: ArraySlice<UInt8>

    init(_ body: ArraySlice<UInt8>, boundary: Bytes) {
        preamble = body
        epilogue = body[body.endIndex...]
        var inPreamble = true
        var segmentStart = body.startIndex
        var lineStart = body.startIndex
        while lineStart < body.endIndex {
            let next = body[lineStart...].firstIndex(of: ASCII.lf).map { $0 + 1 } ?? body.endIndex
            if let isClose = MultipartSplit.delimiterKind(body[lineStart..<next], boundary: boundary) {
                // The line break before the delimiter belongs to it, unless that break
                // is the end of the previous delimiter line (an empty part).
                var delimiterStart = lineStart
                if lineStart > segmentStart {
                    delimiterStart -= 1                       // the LF ending the previous line
                    if delimiterStart > segmentStart && body[delimiterStart - 1] == ASCII.cr { delimiterStart -= 1 }
                }
                let segment = body[segmentStart..<delimiterStart]
                if inPreamble { preamble = segment; inPreamble = false } else { parts.append(segment) }
                if isClose {
                    close = Array(body[delimiterStart..<next])
                    epilogue = body[next...]
                    return
                }
                delimiters.append(Array(body[delimiterStart..<next]))
                segmentStart = next
            }
            lineStart = next
        }
        if !inPreamble { parts.append(body[segmentStart...]) }
    }

    /// nil when the line is not a delimiter; otherwise whether it is the close delimiter.
    static func delimiterKind(_ line: ArraySlice<UInt8>, boundary: Bytes) -> Bool? {
        guard line.count >= boundary.count + 2, line.hasBytePrefix("--"),
              line.dropFirst(2).prefix(boundary.count).elementsEqual(boundary) else { return nil }
        var j = line.startIndex + 2 + boundary.count
        var isClose = false
        if line.endIndex - j >= 2 && line[j] == UInt8(ascii: "-") && line[j + 1] == UInt8(ascii: "-") {
            isClose = true
            j += 2
        }
        while j < line.endIndex && ASCII.isWSP(line[j]) { j += 1 }
        let rest = line[j...]
        guard rest.isEmpty || rest.elementsEqual([ASCII.lf]) || rest.elementsEqual([ASCII.cr, ASCII.lf]) else { return nil }
        return isClose
    }
}
