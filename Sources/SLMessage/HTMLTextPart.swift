#if canImport(Glibc)
import Glibc
#endif

// The HTML text of a message, found in its spooled body one line at a time, so a
// message with a 100 MB attachment is searched without holding it in memory. It is
// found so that this one part can be edited (sl-classify's open tracking) while
// every other byte of the message stays as it was. Multiparts are split by the
// rules MIMEEntity.parse splits them by (MultipartSplit.delimiterKind, the line
// break before a delimiter belonging to it, HeaderSection's header rules), so the
// part found here is the part the in-memory parser sees; RemoteImageTests hold
// the two against each other on thousands of odd messages.

/// Where a message's HTML text lies in its body.
public struct HTMLTextPart: Sendable {
    /// Offsets in the body: the part's header section begins at `start` (which is
    /// `bodyStart` when the message itself is text/html), its content at
    /// `bodyStart`, and the part ends at `end`, before the line break that belongs
    /// to the next delimiter.
    public let start: Int
    public let bodyStart: Int
    public let end: Int
    /// The part's header section: the message's own for a text/html message.
    public let header: HeaderSection

    /// The first text/html leaf that a mail client shows as the message's text:
    /// not `Content-Disposition: attachment`, not inside an attachment, an attached
    /// message (message/rfc822) or a signed multipart (an edit would break the
    /// signature). Nil when there is none, and when the body is too odd to be sure
    /// of the part's bounds: a part header with a NUL byte or a field line over
    /// 8 KiB, a boundary that long, nesting deeper than MIMEEntity parses.
    public static func find(in message: Message) throws -> HTMLTextPart? {
        let header = message.header
        guard !isAttachment(header) else { return nil }
        let type = contentType(header, default: .defaultPlain)
        if type.mimeType == "text/html" {
            // A message that ends within its header section has no body to edit.
            guard !header.separator.isEmpty || message.body.count > 0 else { return nil }
            return HTMLTextPart(start: 0, bodyStart: 0, end: message.body.count, header: header)
        }
        guard let frame = Frame(type) else { return nil }
        var scanner = Scanner(frames: [frame])
        var lines = LineAssembler()
        try message.body.forEachChunk { chunk in
            guard !scanner.done else { return }
            lines.feed(chunk, whole: { scanner.readsHeader }) { scanner.take($0) }
        }
        if let last = lines.finish() { scanner.take(last) }
        scanner.finish(at: message.body.count)
        return scanner.found
    }

    static func contentType(_ header: HeaderSection, default type: ContentType) -> ContentType {
        header.first("Content-Type").map { ContentType(parsing: $0.unfoldedValue) } ?? type
    }

    static func isAttachment(_ header: HeaderSection) -> Bool {
        header["Content-Disposition"].map { ContentDisposition(parsing: $0).disposition == "attachment" } ?? false
    }

    /// An open multipart whose parts the scanner is among.
    struct Frame {
        enum State { case preamble, part, epilogue }
        let boundary: Bytes
        /// RFC 2046 5.1.5: a part of a multipart/digest without a type is a message.
        let childDefault: ContentType
        var state = State.preamble

        /// A multipart to look into; nil for a signed one, or one whose delimiter
        /// lines would not fit in what a line keeps.
        init?(_ type: ContentType) {
            guard type.isMultipart, type.subtype != "signed", let b = type.boundary,
                  b.utf8.count + 4 < LineAssembler.keep else { return nil }
            boundary = Array(b.utf8)
            childDefault = type.subtype == "digest" ? .defaultDigestPart : .defaultPlain
        }
    }

    /// One line of the body: where it is, and as much of it as a delimiter or a
    /// header field needs (see LineAssembler).
    struct Line {
        var start: Int
        var count: Int
        var kept: Bytes
        /// Longer than `LineAssembler.keep`: a header field that long is not read.
        var overflowed: Bool
        /// Beyond what was kept, more than white space and a line end: no delimiter.
        var junk: Bool
        /// The line ends in CR LF.
        var endsCRLF: Bool
        var end: Int { start + count }

        func delimiter(_ boundary: Bytes) -> Bool? {
            junk ? nil : MultipartSplit.delimiterKind(kept[...], boundary: boundary)
        }

        /// What the line is to a header section, also for a line longer than was
        /// kept (collapsed white space does not change it); nil when only the part
        /// of the line that was not kept could decide.
        var headerKind: HeaderSection.LineKind? {
            let kind = HeaderSection.kind(ofLine: kept)
            guard kind == .other, junk else { return kind }
            // Cut short: a field name and white space up to the cut might still
            // meet a colon after it.
            var j = 0
            while j < kept.count && ASCII.isFieldNameByte(kept[j]) { j += 1 }
            while j > 0 && j < kept.count && ASCII.isWSP(kept[j]) { j += 1 }
            return j < kept.count ? .other : nil
        }
    }

    /// Cuts chunks into lines. A line is kept whole up to `keep` bytes; beyond that
    /// each run of white space is kept as one byte (a delimiter's transport padding
    /// may be of any length) and three bytes more at most (white space, CR, LF: the
    /// most a delimiter line can have there), else the line is junk. So a delimiter
    /// is recognised exactly as in memory, and a long base64 line costs nothing.
    /// Outside a header section, a line that does not begin with `-` can be
    /// nothing but content: it is not kept at all (it is junk), which is what
    /// makes a large attachment cheap to pass over.
    struct LineAssembler {
        static let keep = 8192
        var start = 0
        var count = 0
        var kept = Bytes()
        var beyond = 0
        var junk = false
        var last: (UInt8, UInt8) = (0, 0)

        /// `whole`: whether the line about to begin is in a header section.
        mutating func feed(_ chunk: ArraySlice<UInt8>, whole: () -> Bool, _ emit: (Line) -> Void) {
            chunk.withUnsafeBufferPointer { buffer in
                guard let base = buffer.baseAddress else { return }
                var i = 0
                while i < buffer.count {
                    let found = memchr(base + i, Int32(ASCII.lf), buffer.count - i)
                    let end = found.map { UnsafeRawPointer($0) - UnsafeRawPointer(base) + 1 } ?? buffer.count
                    if count == 0 && base[i] != UInt8(ascii: "-") && !whole() { junk = true }
                    append(UnsafeBufferPointer(rebasing: buffer[i..<end]))
                    if found != nil { emit(take()) }
                    i = end
                }
            }
        }

        /// The last line, when the body does not end with a line break.
        mutating func finish() -> Line? { count > 0 ? take() : nil }

        private mutating func append(_ piece: UnsafeBufferPointer<UInt8>) {
            if !junk {
                let room = max(0, Self.keep - kept.count)
                kept += piece.prefix(room)
                for b in piece.dropFirst(room) {
                    if ASCII.isWSP(b) && kept.last.map(ASCII.isWSP) == true { continue }
                    if beyond == 3 { junk = true; break }
                    kept.append(b)
                    beyond += 1
                }
            }
            count += piece.count
            if let l = piece.last { last = (piece.count > 1 ? piece[piece.count - 2] : last.1, l) }
        }

        private mutating func take() -> Line {
            let line = Line(start: start, count: count, kept: kept, overflowed: count > Self.keep, junk: junk,
                            endsCRLF: last == (ASCII.cr, ASCII.lf))
            start += count
            count = 0; kept = []; beyond = 0; junk = false; last = (0, 0)
            return line
        }
    }

    /// The multipart state machine: the frames of the open multiparts, outermost
    /// first, and what the line in hand belongs to.
    struct Scanner {
        enum Current {
            /// Between parts: a preamble or an epilogue.
            case between
            case header(start: Int, bytes: Bytes)
            /// A part that is not the HTML text, or a multipart whose frame is open.
            case other
            case html(start: Int, bodyStart: Int, header: HeaderSection)
        }

        var frames: [Frame]
        var current = Current.between
        var previousEndsCRLF = false
        var found: HTMLTextPart?
        var gaveUp = false
        var done: Bool { found != nil || gaveUp }
        var readsHeader: Bool { if case .header = current { return true } else { return false } }

        mutating func take(_ line: Line, fromFrame first: Int = 0) {
            guard !done else { return }
            defer { previousEndsCRLF = line.endsCRLF }
            // A delimiter of an open multipart, the outermost first: as the parser
            // splits the outer body before it looks at a part, an outer delimiter
            // ends every part inside.
            for i in frames.indices.dropFirst(first) where frames[i].state != .epilogue {
                guard let isClose = line.delimiter(frames[i].boundary) else { continue }
                endPart(atDelimiter: line.start)
                frames.removeSubrange((i + 1)...)
                frames[i].state = isClose ? .epilogue : .part
                current = isClose ? .between : .header(start: line.end, bytes: [])
                return
            }
            guard case .header(let start, var bytes) = current else { return }
            guard let kind = line.headerKind else { gaveUp = true; return }
            if kind == .field || (kind == .continuation && !bytes.isEmpty) {
                guard !line.overflowed else { gaveUp = true; return }
                bytes += line.kept
                if bytes.count > HeaderSection.maximumSize { gaveUp = true } else { current = .header(start: start, bytes: bytes) }
                return
            }
            // The header section ends: at an empty line, or before a line that is
            // neither a field nor its continuation, which then begins the body.
            let isSeparator = kind == .separator
            if isSeparator { bytes += line.kept }
            guard let header = try? HeaderSection.scan(bytes[...]).header else { gaveUp = true; return }
            let opened = begin(header, start: start, bodyStart: isSeparator ? line.end : line.start)
            if opened && !isSeparator { take(line, fromFrame: frames.count - 1) }
        }

        /// Whether a part with this header is the HTML text, or a multipart to look
        /// into (its frame), or neither.
        func kind(_ header: HeaderSection) -> (html: Bool, frame: Frame?) {
            guard !HTMLTextPart.isAttachment(header) else { return (false, nil) }
            let type = HTMLTextPart.contentType(header, default: frames[frames.count - 1].childDefault)
            return (type.mimeType == "text/html", frames.count < 64 ? Frame(type) : nil)
        }

        /// Decides what the part whose header was just read is; true when it opened
        /// a frame of its own.
        mutating func begin(_ header: HeaderSection, start: Int, bodyStart: Int) -> Bool {
            let (html, frame) = kind(header)
            current = html ? .html(start: start, bodyStart: bodyStart, header: header) : .other
            guard !html, let frame else { return false }
            frames.append(frame)
            current = .between
            return true
        }

        /// The HTML part ends where a delimiter begins, less the line break before it
        /// (unless that break ends the line that opened the part).
        mutating func endPart(atDelimiter delimiter: Int) {
            if case .header(_, let bytes) = current {
                // A header the delimiter cut short: the parser sees an empty part, and
                // when that is the HTML text there is nothing to edit.
                let header = try? HeaderSection.scan(bytes[...]).header
                if header.map({ kind($0).html }) ?? true { gaveUp = true }
                return
            }
            guard case .html(let start, let bodyStart, let header) = current else { return }
            var end = delimiter
            if end > start {
                end -= 1
                if end > start && previousEndsCRLF { end -= 1 }
            }
            // An empty part whose blank line the delimiter took has no body to edit.
            if end >= bodyStart {
                found = HTMLTextPart(start: start, bodyStart: bodyStart, end: end, header: header)
            } else {
                gaveUp = true
            }
        }

        /// The end of the body: a part still open runs to it.
        mutating func finish(at end: Int) {
            guard !done, case .html(let start, let bodyStart, let header) = current else { return }
            found = HTMLTextPart(start: start, bodyStart: bodyStart, end: end, header: header)
        }
    }
}
