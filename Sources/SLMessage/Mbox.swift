#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Reads a stream of messages: mboxrd (a `From ` line before each message, `>From`
/// quoting undone on the way in), or a bare RFC 5322 message taken as a stream of one.
/// Headers are held in memory (bounded by HeaderSection.maximumSize); bodies go to a
/// Spool, so memory stays flat whatever the message size.
public struct MessageStreamReader<Source: ByteSource> {
    /// How the input is framed.
    public enum Framing: Sendable {
        /// mboxrd when the first line begins with `From `, else one bare message.
        case automatic
        /// Exactly one message, as procmail and Postfix pipe(8) with the F flag hand it
        /// over: a leading `From ` line is its envelope line, and no later line splits
        /// it or is unquoted (those programs do not quote body lines).
        case single
        /// Exactly one message with no `From ` line at all.
        case bare
    }
    private enum Mode { case undetermined, single, mbox, bare, done }
    private var lines: LineReader<Source>
    private var mode: Mode
    private var nextFromLine: Bytes?
    private var firstPiece: (piece: ArraySlice<UInt8>, startsLine: Bool)?
    private let spoolMemoryLimit: Int
    public private(set) var count = 0
    /// True once the input turned out to be mboxrd (a `From ` line first).
    public private(set) var inputIsMbox = false
    /// Whether `X-SL-Length` is checked (and removed): between sl stages. The first
    /// stage reads mail from outside, where the field means nothing and a forged
    /// one must not get a message rejected; it removes every X-SL-* field anyway.
    public var checksStreamLength = true

    public init(_ source: Source, framing: Framing = .automatic, spoolMemoryLimit: Int = Spool.defaultMemoryLimit) {
        self.init(source, framing: framing, spoolMemoryLimit: spoolMemoryLimit, maxPiece: 64 << 10)
    }

    /// With the pieces of a long line as small as `maxPiece`, so that tests and fuzzing
    /// reach the code that joins them with small inputs.
    init(_ source: Source, framing: Framing, spoolMemoryLimit: Int, maxPiece: Int) {
        lines = LineReader(source, maxPiece: maxPiece)
        switch framing {
        case .automatic: mode = .undetermined
        case .single: mode = .single
        case .bare: mode = .bare
        }
        self.spoolMemoryLimit = spoolMemoryLimit
    }

    public mutating func next() throws -> Message? {
        switch mode {
        case .done:
            return nil
        case .undetermined:
            guard let p = try lines.next() else { mode = .done; return nil }
            if p.piece.hasBytePrefix("From ") {
                mode = .mbox
                inputIsMbox = true
                nextFromLine = try restOfLine(p.piece)
            } else {
                mode = .bare
                firstPiece = p
            }
        case .single:
            guard let p = try lines.next() else { mode = .done; return nil }
            mode = .bare
            if p.piece.hasBytePrefix("From ") { nextFromLine = try restOfLine(p.piece) } else { firstPiece = p }
        case .bare:
            if count > 0 { mode = .done; return nil }
        case .mbox:
            if nextFromLine == nil { mode = .done; return nil }
        }
        return try readMessage()
    }

    private mutating func restOfLine(_ first: ArraySlice<UInt8>) throws -> Bytes {
        var line = Array(first)
        while line.last != ASCII.lf, let p = try lines.next() {
            line += p.piece
            if line.count > 64 << 10 { throw MessageError.malformed("mbox From line longer than 64 KiB") }
        }
        return line
    }

    private mutating func readMessage() throws -> Message? {
        count += 1
        let index = count
        let inMbox = mode == .mbox
        let fromLine = nextFromLine
        nextFromLine = nil
        var headerBytes = Bytes()
        var inHeader = true
        var headerOpen = false           // a field has started, so continuations belong
        let body = Spool(memoryLimit: spoolMemoryLimit)
        var heldBlankLine = false        // mboxrd: a "\n" line that may be the separator
        var heldSeparator = false        // mboxrd: the same, right after the header fields
        var unquoter = FromUnquoter()    // mboxrd: body lines' `>From` quoting
        // With no header lines, the line ending for fields a stage adds comes from the
        // body's first line, as HeaderSection.scan takes it from the message's first.
        var bodyLineEnding: Bytes?
        var byteBefore: UInt8?           // the last byte of the body's previous piece
        func noteFirstBodyLine(_ piece: ArraySlice<UInt8>) {
            guard headerBytes.isEmpty, bodyLineEnding == nil, !piece.isEmpty else { return }
            guard let lf = piece.firstIndex(of: ASCII.lf) else { byteBefore = piece.last; return }
            let cr = lf > piece.startIndex ? piece[lf - 1] == ASCII.cr : byteBefore == ASCII.cr
            bodyLineEnding = cr ? [ASCII.cr, ASCII.lf] : [ASCII.lf]
        }

        func nextPiece() throws -> (piece: ArraySlice<UInt8>, startsLine: Bool)? {
            if let f = firstPiece { firstPiece = nil; return f }
            return try lines.next()
        }

        while true {
            if !inHeader && firstPiece == nil && !heldSeparator && !heldBlankLine, let run = lines.nextRun(mbox: inMbox) {
                try body.append(run)
                continue
            }
            guard let next = try nextPiece() else { break }
            var piece = next.piece
            let startsLine = next.startsLine
            if inMbox && startsLine && piece.hasBytePrefix("From ") {
                nextFromLine = try restOfLine(piece)
                break
            }
            if inHeader && startsLine && piece.last != ASCII.lf && !HeaderSection.isKindDecided(byLineStart: piece) {
                // A line longer than a piece whose start is all field-name bytes: whether
                // it is a field depends on a colon further on. Read on until that is
                // clear (the section is held in memory and bounded anyway), so the
                // reader splits header from body where HeaderSection.scan does.
                var line = Array(piece)
                while !HeaderSection.isKindDecided(byLineStart: line), line.count <= HeaderSection.maximumSize,
                      let more = try nextPiece() {
                    line += more.piece
                    if more.piece.last == ASCII.lf { break }
                }
                piece = line[...]
            }
            if inMbox {
                if inHeader && startsLine {
                    // A header line is in hand as far as its kind is decided (joined
                    // above), which is past any `>*From `: undo the quoting at once.
                    if piece.first == ASCII.greaterThan && FromQuoter.fromPrefixState(piece) == .quote {
                        piece = piece.dropFirst()
                    }
                } else if !inHeader {
                    piece = unquoter.filter(piece, startsLine: startsLine)
                }
            }
            if inHeader {
                if startsLine {
                    switch HeaderSection.kind(ofLine: piece) {
                    case .separator:
                        inHeader = false
                        // In mboxrd a lone "\n" right before the next From line (or the
                        // end) is the message separator, not the header's: hold it.
                        if inMbox && piece.count == 1 {
                            heldSeparator = true
                        } else {
                            headerBytes += piece
                        }
                        continue
                    case .field:
                        headerOpen = true
                    case .continuation where headerOpen:
                        break
                    case .continuation, .other:
                        inHeader = false
                    }
                }
                if inHeader {
                    headerBytes += piece
                    if headerBytes.count > HeaderSection.maximumSize {
                        throw MessageError.malformed("message \(index): header section larger than \(HeaderSection.maximumSize >> 20) MiB")
                    }
                    continue
                }
            }
            if heldSeparator {                  // more follows: it was the header's separator
                headerBytes.append(ASCII.lf)
                heldSeparator = false
            }
            if inMbox && startsLine && piece.count == 1 && piece.first == ASCII.lf {
                if heldBlankLine { try body.append(piece) }
                heldBlankLine = true
                continue
            }
            if heldBlankLine { try body.append([ASCII.lf]); heldBlankLine = false }
            noteFirstBodyLine(piece)
            try body.append(piece)
        }
        // The input ended inside a line that began like a quoted From line.
        let held = unquoter.finish()
        if !held.isEmpty { try body.append(held[...]) }
        if !inMbox { mode = .done }
        var scan: HeaderSection.Scan
        do {
            scan = try HeaderSection.scan(headerBytes[...])
        } catch let MessageError.malformed(why) {
            // The reader is at the next message already, so a caller that sets
            // malformed messages aside can go on with the rest of the stream.
            throw RejectedMessage(index: index, reason: why, fromLine: fromLine, header: headerBytes, body: body)
        }
        precondition(scan.bodyStart == headerBytes.count, "streaming and in-memory header parsers disagree")
        if let ending = bodyLineEnding { scan.header.lineEnding = ending }
        if inMbox && checksStreamLength, let declared = scan.header[StreamLength.field] {
            scan.header.remove(StreamLength.field)
            guard let octets = Int(declared.trimmingCharacters(in: .whitespaces)), octets == body.count else {
                throw RejectedMessage(index: index, reason: "the stream ends inside this message (\(StreamLength.field) says \(declared) octets, \(body.count) came): the stage before stopped mid-message",
                                      fromLine: fromLine, header: headerBytes, body: body)
            }
        }
        return Message(fromLine: fromLine, header: scan.header, body: body, index: index)
    }
}

/// Writes messages as mboxrd: the `From ` line (kept from input or made from the
/// envelope sender), every line matching `^>*From ` quoted with one more `>`, and an
/// empty line after each message. A message not ending in a line break gets one.
public final class MboxWriter {
    let sink: ByteSink
    public init(sink: ByteSink) { self.sink = sink }

    /// With `declareLength`, a message that carries routing (X-SL-* fields: it is
    /// on its way from one sl stage to the next) says how long its body is, so
    /// that the next stage can tell a whole message from one cut off by a stage
    /// that died while writing it (see StreamLength).
    public func write(_ message: Message, envelopeSender: String? = nil, declareLength: Bool = false) throws {
        var from = message.fromLine ?? Self.fromLine(sender: envelopeSender)
        // A From line read at the very end of the input has no line feed; written as it
        // is, the header's first line would become part of it.
        if from.last != ASCII.lf { from.append(ASCII.lf) }
        try sink.write(from)
        var header = message.header
        if declareLength && header.fields.contains(where: HeaderSection.isEnvelopeField) {
            header.remove(StreamLength.field)
            try header.add(StreamLength.field, String(StreamLength.octetsRead(message.body)), atTop: true)
        }
        try writeRaw(header.bytes, body: message.body)
    }

    /// Writes header octets and a body as one mboxrd message after a From line the
    /// caller wrote (`write`, or a reject file keeping a message that did not parse
    /// as it came): `>From` quoting, a line end if the body lacks one, the blank
    /// separator line.
    public func writeRaw(_ header: Bytes, body: Spool) throws {
        let quoter = FromQuoter(sink: sink)
        try quoter.write(header[...])
        try body.forEachChunk { try quoter.write($0) }
        try quoter.finish()
        if !quoter.endsWithLineFeed { try sink.write([ASCII.lf]) }
        try sink.write([ASCII.lf])
    }

    /// Writes one message as it is, with no mbox framing: for a tool given one bare
    /// message that makes one message of it (`sl-encrypt-pgp -r ... < msg.eml`).
    public func writeBare(_ message: Message) throws {
        try sink.write(message.header.bytes)
        try message.body.forEachChunk { try sink.write($0) }
    }

    /// `From sender Sun Nov 29 02:50:32 2026` — asctime(3) format, UTC. Made by hand
    /// rather than with DateFormatter, which is slow to create and runs once per message.
    public static func fromLine(sender: String?, date: Date = Date()) -> Bytes {
        var who = sender ?? ""
        if who.isEmpty || who.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F }) { who = "MAILER-DAEMON" }
        var t = time_t(date.timeIntervalSince1970)
        var tm = tm()
        gmtime_r(&t, &tm)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let day = tm.tm_mday < 10 ? " \(tm.tm_mday)" : "\(tm.tm_mday)"
        let stamp = "\(days[Int(tm.tm_wday)]) \(months[Int(tm.tm_mon)]) \(day) \(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) \(1900 + tm.tm_year)"
        return Array("From \(who) \(stamp)\n".utf8)
    }
}

/// Adds one `>` before every line matching `^>*From `, across chunk boundaries.
/// The `>` goes in at the end of the line's run of `>`, right before `From `: the
/// same bytes as at the line's start, since the run is all `>`, but the run can
/// pass through as it comes. Only a partly matched `From ` (at most four bytes) is
/// held between chunks, so a line of megabytes of `>` costs no memory and no
/// copying (holding the whole run made each chunk copy it again: quadratic).
final class FromQuoter {
    private let sink: ByteSink
    private var deciding = true          // at a line's start, its `>*From ` not settled
    private var held = 0                 // bytes of "From " matched at a chunk's end, not yet written
    private(set) var endsWithLineFeed = true
    static let from: [UInt8] = Array("From ".utf8)

    init(sink: ByteSink) { self.sink = sink }

    func write(_ chunk: ArraySlice<UInt8>) throws {
        guard !chunk.isEmpty else { return }
        var data = chunk
        if held > 0 { data = (Self.from[0..<held] + chunk)[...]; held = 0 }
        var written = data.startIndex    // bytes before this are written
        var matchStart = data.startIndex // where the "From " being matched begins
        var matched = 0
        var i = data.startIndex
        while i < data.endIndex {
            if deciding {
                let b = data[i]
                if matched == 0 && b == ASCII.greaterThan { i += 1; continue }
                if b == Self.from[matched] {
                    if matched == 0 { matchStart = i }
                    matched += 1
                    i += 1
                    if matched < Self.from.count { continue }
                    try sink.write(data[written..<matchStart])
                    try sink.write([ASCII.greaterThan])
                    written = matchStart
                }
                deciding = false
                matched = 0
            }
            guard let lf = data[i...].firstIndex(of: ASCII.lf) else { i = data.endIndex; break }
            i = lf + 1
            deciding = true
        }
        if deciding && matched > 0 {
            try sink.write(data[written..<matchStart])
            held = matched
            endsWithLineFeed = false
        } else {
            try sink.write(data[written..<data.endIndex])
            endsWithLineFeed = data.last == ASCII.lf
        }
    }

    func finish() throws {
        if held > 0 {
            try sink.write(Self.from[0..<held])
            held = 0
        }
    }

    enum PrefixState { case quote, no, undecided }

    /// Whether a line starting with `s` matches `^>*From `, or `s` is too short to tell.
    static func fromPrefixState(_ s: ArraySlice<UInt8>) -> PrefixState {
        var i = s.startIndex
        while i < s.endIndex && s[i] == ASCII.greaterThan { i += 1 }
        var k = 0
        while k < from.count {
            if i == s.endIndex { return .undecided }
            if s[i] != from[k] { return .no }
            i += 1; k += 1
        }
        return .quote
    }
}

/// Undoes FromQuoter on a body's lines as the reader gets them, in pieces: a line
/// matching `^>+From ` loses one `>`. Whether a line matches shows only after its
/// run of `>`, which may go on for pieces; the run passes through as it comes but
/// for its last `>`, held back until the line shows whether it is a quoted From
/// line. Memory stays bounded however long the run.
struct FromUnquoter {
    private var deciding = false
    private var heldQuote = false        // the run's last `>`, not yet passed on
    private var matched = 0              // bytes of "From " after the run, not yet passed on

    /// The bytes of `piece` to keep. `startsLine`: the piece begins a line.
    mutating func filter(_ piece: ArraySlice<UInt8>, startsLine: Bool) -> ArraySlice<UInt8> {
        if startsLine {
            // Most lines: not quoted, nothing to decide, nothing copied.
            guard piece.first == ASCII.greaterThan else { deciding = false; return piece }
            deciding = true
            heldQuote = false
            matched = 0
        }
        guard deciding else { return piece }
        var kept = Bytes()
        var i = piece.startIndex
        while i < piece.endIndex {
            let b = piece[i]
            if matched == 0 && b == ASCII.greaterThan {
                if heldQuote { kept.append(b) }
                heldQuote = true
                i += 1
                continue
            }
            if b == FromQuoter.from[matched] {
                matched += 1
                i += 1
                if matched < FromQuoter.from.count { continue }
                kept += FromQuoter.from          // a quoted From line: the held `>` goes
            } else {
                kept.append(ASCII.greaterThan)   // not one: give back what was held
                kept += FromQuoter.from[0..<matched]
            }
            deciding = false
            break
        }
        kept += piece[i...]
        return kept[...]
    }

    /// What is still held when the input ends inside an undecided line.
    mutating func finish() -> Bytes {
        guard deciding else { return [] }
        deciding = false
        return (heldQuote ? [ASCII.greaterThan] : []) + FromQuoter.from[0..<matched]
    }
}

/// `X-SL-Length`: between sl stages in a stream, each routed message declares the
/// octets of its body as the next reader will see them. A stage killed while
/// writing leaves its last message cut short; without the count the next stage
/// would take the fragment for a whole message and send it.
public enum StreamLength {
    public static let field = "X-SL-Length"

    /// The body as MboxWriter frames it and MessageStreamReader gives it back: a
    /// body not ending a line gets one.
    static func octetsRead(_ body: Spool) -> Int {
        body.count + (body.lastOctet == nil || body.lastOctet == ASCII.lf ? 0 : 1)
    }
}

/// A message the reader could not take (its header section is malformed, or the
/// stream ended inside it), with its octets as they came, so that a caller keeping
/// on with the rest of a stream can set it aside whole. The reader stands at the
/// next message.
public struct RejectedMessage: Error, CustomStringConvertible, Sendable {
    public let index: Int
    public let reason: String
    public let fromLine: Bytes?
    public let header: Bytes
    public let body: Spool

    public var description: String { "malformed message: message \(index): \(reason)" }
}
