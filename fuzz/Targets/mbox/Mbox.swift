@testable import SLMessage

/// The stream reader (MessageStreamReader, mboxrd and bare framing) and MboxWriter.
/// The first input byte picks how long the reader's pieces of a long line are (the
/// default 64 KiB would need inputs too big to fuzz; small pieces exercise the same
/// joining code). Invariants:
/// - reading a bare message is lossless: header bytes + body == input, and the
///   header is exactly what the in-memory parser (HeaderSection.scan) makes of the
///   input, whatever the piece size; it is refused only for a NUL in the header;
/// - mboxrd: writing the messages read in small pieces (with MboxWriter) and reading
///   that back in the default pieces
///   gives the same messages (From lines, header fields, bodies but for the line end
///   the writer adds to a body that lacks one), and writing those again gives the
///   same bytes (a fixpoint); the reader never traps.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let piece = 8 + Int(data[0] % 64)
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))

    // Bare framing, small pieces: lossless and in agreement with HeaderSection.scan.
    var bare = MessageStreamReader(MemorySource(bytes), framing: .bare, spoolMemoryLimit: 1 << 20, maxPiece: piece)
    do {
        if let m = try bare.next() {
            let scan = try! HeaderSection.scan(bytes[...])
            precondition(m.header.fields == scan.header.fields && m.header.separator == scan.header.separator,
                         "the stream reader and HeaderSection.scan disagree on the header")
            // lineEnding (how new fields are written) comes from the input's first line,
            // a body line when there are no header lines.
            precondition(m.header.lineEnding == scan.header.lineEnding, "the stream reader and HeaderSection.scan disagree on the line ending")
            precondition(try! m.bytes() == bytes, "a bare message does not read back byte for byte")
        } else {
            precondition(bytes.isEmpty, "no message read from a non-empty input")
        }
    } catch let r as RejectedMessage {
        precondition(bytes.contains(0), "rejected a message without NUL: \(r.reason)")
    } catch {
        preconditionFailure("bare read threw \(error)")
    }

    // mboxrd round trip: read in small pieces, read back in the default ones.
    let first = readAll(bytes, maxPiece: piece)
    let out1 = writeAll(first)
    // The first read checks X-SL-Length (and removes it) in mboxrd input; a bare message
    // keeps one, which a later stage would then check: sl-classify removes X-SL-* on
    // entry, so the read back does not check it.
    let second = readAll(out1, checkLength: false)
    precondition(second.count == first.count, "wrote \(first.count) messages, read back \(second.count)")
    for (a, b) in zip(first, second) {
        let fromA = a.fromLine ?? fixedFromLine
        precondition(b.fromLine == (fromA.last == 0x0A ? fromA : fromA + [0x0A]), "From line changed")
        precondition(b.header.fields == a.header.fields || lastFieldGainedLineEnd(a, b), "header fields changed")
        let bodyA = try! a.body.readAll(), bodyB = try! b.body.readAll()
        let expected = bodyA.isEmpty || bodyA.last == 0x0A ? bodyA : bodyA + [0x0A]
        if !a.header.separator.isEmpty || bodyA.isEmpty {
            precondition(bodyB == expected, "body changed")
        }
    }
    let out2 = writeAll(second)
    precondition(out2 == out1, "writing what was read back is not a fixpoint")
    return 0
}

let fixedFromLine = Array("From fuzz@example.org Thu Jan  1 00:00:00 1970\n".utf8)

func readAll(_ bytes: Bytes, checkLength: Bool = true, maxPiece: Int = 64 << 10) -> [Message] {
    var reader = MessageStreamReader(MemorySource(bytes), framing: .automatic, spoolMemoryLimit: 1 << 20, maxPiece: maxPiece)
    reader.checksStreamLength = checkLength
    var out: [Message] = []
    var guardCount = 0
    while true {
        guardCount += 1
        precondition(guardCount < 100_000, "the reader does not advance")
        do {
            guard let m = try reader.next() else { break }
            out.append(m)
        } catch is RejectedMessage {
            continue
        } catch {
            preconditionFailure("the reader threw \(error)")
        }
    }
    return out
}

func writeAll(_ messages: [Message]) -> Bytes {
    let sink = MemorySink()
    let writer = MboxWriter(sink: sink)
    for var m in messages {
        if m.fromLine == nil { m.fromLine = fixedFromLine }
        try! writer.write(m)
    }
    return sink.bytes
}

/// A header that ended at the end of the input without a line break gets one when
/// written, as the message's line end.
func lastFieldGainedLineEnd(_ a: Message, _ b: Message) -> Bool {
    guard a.header.fields.count == b.header.fields.count, let la = a.header.fields.last, let lb = b.header.fields.last,
          la.raw.last != 0x0A else { return false }
    return zip(a.header.fields.dropLast(), b.header.fields.dropLast()).allSatisfy(==) && lb.raw == la.raw + [0x0A]
}
