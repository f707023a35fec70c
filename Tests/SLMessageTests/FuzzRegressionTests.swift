import Testing
@testable import SLMessage

/// Inputs the fuzz targets in fuzz/Targets found (fuzz/run), kept as ordinary tests:
/// each names the input, the invariant it broke and the root cause that was fixed.
@Suite struct FuzzRegressionTests {
    /// mbox target, "Content-Type: multipart/mixed; boundary=zz\n\n--zz..." read in
    /// 8-byte pieces: the stream reader classified a header line by its first piece,
    /// which held only field-name bytes, so it took the line for the start of the body
    /// while HeaderSection.scan (and so MIMEEntity.parse of the same bytes) took it for
    /// a field. With the default 64 KiB pieces the same happens to a field whose name is
    /// longer than that: a Content-Type the reader does not see but a parser of the
    /// whole message does. The reader now reads on until the line's kind is decided.
    @Test func streamReaderJoinsPiecesOfALongFieldNameBeforeClassifying() throws {
        let input = b("Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\nline\n\r\n--zz--\n")
        var reader = MessageStreamReader(MemorySource(input), framing: .bare, spoolMemoryLimit: 1 << 20, maxPiece: 8)
        let m = try #require(try reader.next())
        let parsed = try HeaderSection.parse(input)
        #expect(m.header == parsed)
        #expect(m.header.fields.map(\.name) == ["Content-Type"])
        #expect(try m.bytes() == input)
    }

    @Test func fieldNameLongerThanAPieceIsAFieldAsInTheInMemoryParser() throws {
        let name = String(repeating: "X", count: 70_000)
        let input = b("\(name): v\nSubject: s\n\nbody\n")
        let m = try Message(bytes: input)
        #expect(m.header.fields.map(\.name) == [name, "Subject"])
        #expect(try m.body.readAll() == b("body\n"))
        let scan = try HeaderSection.scan(input[...])
        #expect(m.header == scan.header)
    }

    /// mbox target, "From a Mon Nov 30 000:Content-Type:::00 multip 06art/" (a From
    /// line at the end of the input, without a line feed): MboxWriter wrote the From
    /// line as it was, so the header's first line joined it and reading the output
    /// back gave another From line. The writer now ends the From line.
    @Test func fromLineWithoutLineFeedIsEndedWhenWritten() throws {
        var reader = MessageStreamReader(MemorySource(b("From a Mon Nov 30 00:00:00 2026")))
        let m = try #require(try reader.next())
        #expect(m.fromLine == b("From a Mon Nov 30 00:00:00 2026"))
        var withHeader = m
        try withHeader.header.add("Subject", "s")
        let sink = MemorySink()
        try MboxWriter(sink: sink).write(withHeader)
        var again = MessageStreamReader(MemorySource(sink.bytes))
        let back = try #require(try again.next())
        #expect(back.fromLine == b("From a Mon Nov 30 00:00:00 2026\n"))
        #expect(back.header.fields.map(\.name) == ["Subject"])
    }

    /// addresses target, "xn--daj6fgehfvwxn": an A-label whose U-label is "«±¦¨¥­§£¯"
    /// (symbols the Unicode path refuses) was accepted because the ASCII path only
    /// checked that it decodes. toASCII(toUnicode(x)) then failed for a domain toASCII
    /// had accepted. A-labels are now checked as RFC 5891 5.4 asks: the U-label must be
    /// valid and encode back to the same A-label.
    @Test(arguments: ["xn--daj6fgehfvwxn", "a@xn--daj6fgehfvwxn"])
    func aLabelWithARefusedULabelIsRefused(_ input: String) {
        if input.contains("@") {
            #expect(throws: AddressError.self) { try EmailAddress(parsing: input) }
        } else {
            #expect(throws: AddressError.self) { try IDNA.toASCII(input) }
        }
    }

    @Test func validALabelsStillPass() throws {
        #expect(try IDNA.toASCII("xn--bcher-kva.example") == "xn--bcher-kva.example")
        #expect(try IDNA.toASCII("bücher.example") == "xn--bcher-kva.example")
        // Not NFC (u + combining diaeresis encoded as such): not the A-label of any name.
        let decomposed = try #require(Punycode.encode([Unicode.Scalar("b"), "u", "\u{0308}", "c", "h", "e", "r"]))
        #expect(throws: AddressError.self) { try IDNA.toASCII("xn--" + decomposed) }
    }

    /// Found reading IDNA.swift for the addresses target's idempotence invariant: the
    /// Kelvin sign lowercases to ASCII "k", and the Unicode path Punycode-encoded the
    /// all-ASCII result as "xn--k-", a label toASCII itself refuses. A label that maps
    /// to ASCII is now an ASCII label.
    @Test func labelThatLowercasesToASCIIIsAnASCIILabel() throws {
        #expect(try IDNA.toASCII("\u{212A}.example") == "k.example")
        #expect(try IDNA.toASCII(IDNA.toASCII("\u{212A}.example")) == "k.example")
    }

    /// envelope target, an X-SL-Original-Message-Id holding an ESC: read kept the
    /// control character, write (OneLine) turned it into a space, so a read envelope
    /// written back read differently. Read now normalises as write does.
    @Test func originalMessageIDIsReadAsItIsWritten() throws {
        let input = b("X-SL-Version: 1\nX-SL-Envelope-From: a@b\nX-SL-Envelope-To: c@d\nX-SL-Method: tls\nX-SL-TLS: required\nX-SL-Fallback: bounce\nX-SL-Original-Message-Id: <a\u{1B}b@x>\u{1B}\n\n")
        let header = try HeaderSection.scan(input[...]).header
        let envelope = try #require(try Envelope.read(from: header))
        #expect(envelope.originalMessageID == "<a b@x>")
        var written = HeaderSection(separator: [0x0A], lineEnding: [0x0A])
        try envelope.write(into: &written)
        #expect(try Envelope.read(from: written) == envelope)
    }
}
