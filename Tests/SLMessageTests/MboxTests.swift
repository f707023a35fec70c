import Testing
@testable import SLMessage

/// Reads a stream from bytes and writes it back as mboxrd.
func roundTrip(_ input: Bytes, spoolLimit: Int = Spool.defaultMemoryLimit) throws -> (messages: [Message], output: Bytes) {
    var reader = MessageStreamReader(MemorySource(input), spoolMemoryLimit: spoolLimit)
    var messages: [Message] = []
    let sink = MemorySink()
    let writer = MboxWriter(sink: sink)
    while let m = try reader.next() {
        messages.append(m)
        try writer.write(m)
    }
    return (messages, sink.bytes)
}

func b(_ s: String) -> Bytes { Array(s.utf8) }

@Suite struct MboxTests {
    @Test func bareMessageIsAStreamOfOne() throws {
        let msg = b("Subject: hi\nFrom me\n\nFrom the start\n>From quoted\n")
        let (ms, _) = try roundTrip(msg)
        #expect(ms.count == 1)
        // bare input: no From-line splitting and no unquoting
        #expect(try ms[0].bytes() == msg)
        #expect(ms[0].fromLine == nil)
    }

    @Test(arguments: [
        "From a@b Sat Jan  3 01:05:34 1996\nSubject: one\n\nbody\n\nFrom c@d Sat Jan  3 01:05:34 1996\nSubject: two\n\n>From x\n>>From y\n\n",
        "From a@b Sat Jan  3 01:05:34 1996\r\nSubject: crlf\r\n\r\nline\r\n>From q\r\n\n",
        "From a@b Mon Jan  1 00:00:00 2001\nSubject: no body\n\n",
        "From a@b Mon Jan  1 00:00:00 2001\nSubject: blank lines at end\n\nx\n\n\n\n",
        "From a@b Mon Jan  1 00:00:00 2001\n\nonly a body\n\n",
    ])
    func mboxrdRoundTripsByteForByte(_ text: String) throws {
        let (_, out) = try roundTrip(b(text))
        #expect(out == b(text))
    }

    @Test func quotingIsUndoneOnReadAndRedoneOnWrite() throws {
        let input = b("From a@b Mon Jan  1 00:00:00 2001\nSubject: q\n\n>From one\n>>From two\nFrom: no space, not a separator\n\nFrom c@d Mon Jan  1 00:00:00 2001\n\n")
        var reader = MessageStreamReader(MemorySource(input))
        let m = try #require(try reader.next())
        #expect(try m.body.readAll() == b("From one\n>From two\nFrom: no space, not a separator\n"))
        // an unquoted "From " line starts the next message
        let second = try #require(try reader.next())
        #expect(second.fromLine == b("From c@d Mon Jan  1 00:00:00 2001\n"))
        #expect(try reader.next() == nil)
    }

    @Test func bodyLinesThatLookLikeFromAreQuotedAcrossChunkBoundaries() throws {
        // A body built so that "From " straddles the spool's 64 KiB chunks.
        var body = Bytes(repeating: UInt8(ascii: "x"), count: (64 << 10) - 3) + [0x0A]
        body += b(">>>From split\nFrom again\n")
        let msg = b("Subject: big\n\n") + body
        let m = try Message(bytes: msg)
        let sink = MemorySink()
        try MboxWriter(sink: sink).write(m, envelopeSender: "a@b")
        let text = String(decoding: sink.bytes, as: UTF8.self)
        #expect(text.contains("\n>>>>From split\n>From again\n"))
        var reader = MessageStreamReader(MemorySource(sink.bytes))
        let back = try #require(try reader.next())
        #expect(try back.bytes() == msg)
    }

    @Test func largeBodiesSpillToDisk() throws {
        let line = b(String(repeating: "0123456789", count: 10) + "\n")
        var msg = b("Subject: large\n\n")
        for _ in 0..<2000 { msg += line }
        let (ms, out) = try roundTrip(b("From a@b Mon Jan  1 00:00:00 2001\n") + msg + [0x0A], spoolLimit: 4096)
        #expect(!ms[0].body.isInMemory)
        #expect(ms[0].body.count == 2000 * line.count)
        #expect(out == b("From a@b Mon Jan  1 00:00:00 2001\n") + msg + [0x0A])
    }

    @Test func prefixReadsOnlyTheStartOfASpilledBody() throws {
        let spool = Spool(memoryLimit: 16)
        for i in 0..<1000 { try spool.append(b("line \(i)\n")) }
        #expect(!spool.isInMemory)
        #expect(try spool.prefix(14) == b("line 0\nline 1\n"))
        #expect(try spool.prefix(1 << 20) == spool.readAll())
        #expect(try Spool(b("short")).prefix(100) == b("short"))
    }

    @Test func emptyInputIsAnEmptyStream() throws {
        let (ms, out) = try roundTrip([])
        #expect(ms.isEmpty && out.isEmpty)
    }

    @Test func missingFinalNewlineGetsOne() throws {
        let (_, out) = try roundTrip(b("Subject: x\n\nno newline"))
        #expect(out.suffix(12) == b("no newline\n\n")[...])
    }

    @Test func fromLineIsMadeFromTheEnvelopeSender() {
        let line = String(decoding: MboxWriter.fromLine(sender: "a@b.example", date: .init(timeIntervalSince1970: 0)), as: UTF8.self)
        #expect(line == "From a@b.example Thu Jan  1 00:00:00 1970\n")
        let hostile = String(decoding: MboxWriter.fromLine(sender: "a b\n@x", date: .init(timeIntervalSince1970: 0)), as: UTF8.self)
        #expect(hostile.hasPrefix("From MAILER-DAEMON "))
    }
}

@Suite struct SingleMessageFramingTests {
    @Test func leadingFromLineIsTheEnvelopeAndNothingSplits() throws {
        let input = b("From alice@clinic.example Mon Jan  1 00:00:00 2001\nSubject: lab\n\nFrom the lab: fine\n>From kept as is\n")
        var r = MessageStreamReader(MemorySource(input), framing: .single)
        let m = try #require(try r.next())
        #expect(m.fromLine == b("From alice@clinic.example Mon Jan  1 00:00:00 2001\n"))
        #expect(try m.body.readAll() == b("From the lab: fine\n>From kept as is\n"))
        #expect(try r.next() == nil)
        // the same input read as mboxrd splits at the body line, which is why the option exists
        var auto = MessageStreamReader(MemorySource(input))
        _ = try auto.next()
        #expect(try auto.next() != nil)
    }

    // MARK: keep going, and messages cut short between stages

    /// The messages a reader gives, and the reasons of those it rejects, in order.
    func readAll(_ input: Bytes) -> [String] {
        var reader = MessageStreamReader(MemorySource(input))
        var seen: [String] = []
        while true {
            do {
                guard let m = try reader.next() else { return seen }
                seen.append(m.header["Subject"] ?? "?")
            } catch let r as RejectedMessage {
                seen.append("rejected \(r.index): \(r.reason)")
            } catch {
                seen.append("error: \(error)")
                return seen
            }
        }
    }

    @Test func aMalformedMessageInAStreamIsRejectedAndTheReaderGoesOn() {
        let input = b("From a Mon Nov 30 00:00:00 2026\nSubject: one\n\nx\n\n"
            + "From a Mon Nov 30 00:00:00 2026\nSubject: t\u{0}wo\n\ny\n\n"
            + "From a Mon Nov 30 00:00:00 2026\nSubject: three\n\nz\n\n")
        #expect(readAll(input) == ["one", "rejected 2: NUL byte in the header section", "three"])
    }

    func routed(_ subject: String, body: String) throws -> Message {
        var m = try Message(bytes: b("X-SL-Version: 1\nSubject: \(subject)\n\n\(body)"))
        m.fromLine = b("From a Mon Nov 30 00:00:00 2026\n")
        return m
    }

    @Test(arguments: ["", "line\n", "no final line end", "From quoted\n>From twice\n", "a\n\n\nb\n\n"])
    func routedMessagesDeclareTheirLengthAndReadBackWhole(_ body: String) throws {
        let sink = MemorySink()
        let writer = MboxWriter(sink: sink)
        try writer.write(try routed("one", body: body), declareLength: true)
        try writer.write(try routed("two", body: body), declareLength: true)
        #expect(String(decoding: sink.bytes, as: UTF8.self).contains("X-SL-Length: "))
        var reader = MessageStreamReader(MemorySource(sink.bytes))
        let first = try #require(try reader.next())
        #expect(first.header[StreamLength.field] == nil)          // checked, then gone
        #expect(try first.body.readAll() == b(body.isEmpty || body.hasSuffix("\n") ? body : body + "\n"))
        #expect(try reader.next()?.header["Subject"] == "two")
    }

    @Test func aRoutedMessageCutShortIsRejectedNotTaken() throws {
        let sink = MemorySink()
        let writer = MboxWriter(sink: sink)
        try writer.write(try routed("whole", body: "a\nb\nc\n"), declareLength: true)
        try writer.write(try routed("cut", body: String(repeating: "line of the body\n", count: 100)), declareLength: true)
        // A stage killed while writing the second message: every cut point.
        let whole = sink.bytes
        let secondStart = try #require(String(decoding: whole, as: UTF8.self).range(of: "From a", options: .backwards)).lowerBound.utf16Offset(in: String(decoding: whole, as: UTF8.self))
        for cut in stride(from: secondStart + 33, to: whole.count - 2, by: 37) {
            let seen = readAll(Array(whole[..<cut]))
            #expect(seen.first == "whole")
            // Cut inside its first line, what is left carries no routing (no stage
            // sends it); from then on the length gives it away.
            let unrouted = cut < secondStart + 32 + "X-SL-Length: 1700\n".count
            #expect(seen.count == 2 && (seen[1].hasPrefix("rejected 2: the stream ends inside this message") || unrouted && seen[1] == "?"),
                    "cut at \(cut): \(seen)")
        }
        #expect(readAll(whole) == ["whole", "cut"])
    }

    @Test func withoutRoutingNoLengthIsDeclared() throws {
        let sink = MemorySink()
        try MboxWriter(sink: sink).write(try Message(bytes: b("Subject: plain\n\nbody\n")), declareLength: true)
        #expect(!String(decoding: sink.bytes, as: UTF8.self).contains("X-SL-Length"))
    }
}
