import Testing
@testable import SLMessage

@Suite struct HeaderSectionTests {
    @Test(arguments: [
        "Subject: plain\nTo: a@b\n\nbody\n",
        "Subject: crlf\r\nTo: a@b\r\n\r\nbody\r\n",
        "Subject: folded\n  across\n\tlines\nX: y\n\n",
        "Subject : obsolete space before colon\n\n",
        "Subject: 8-bit \u{00FC}ber\n\n\u{00FF}\u{00FE} binary body\n",
        "Subject: mixed\r\nTo: a@b\n\r\nbody\n",
        "Subject: no separator, headers only\n",
        "not a header line\nSubject: x\n\n",
        " leading continuation\n\n",
        "Subject: bare\rCR\n\nbody\r\n",
        "Subject: x\n\n\n\n",
    ])
    func messagesRoundTripByteForByte(_ text: String) throws {
        let m = try Message(bytes: b(text))
        #expect(try m.bytes() == b(text))
    }

    @Test func unfoldingAndDecoding() throws {
        let m = try Message(bytes: b("Subject: =?UTF-8?B?R3LDvMOfZQ==?=\n =?ISO-8859-1?Q?_f=FCr?= you\nTo: a@b\n\n"))
        let f = try #require(m.header.first("subject"))
        #expect(f.unfoldedValue == "=?UTF-8?B?R3LDvMOfZQ==?= =?ISO-8859-1?Q?_f=FCr?= you")
        #expect(f.decodedValue == "Grüße für you")
    }

    @Test(arguments: [
        ("=?UTF-8?B?invalid!?=", "=?UTF-8?B?invalid!?="),
        ("=?x-unknown?Q?abc?=", "=?x-unknown?Q?abc?="),
        ("=?UTF-8?Q?a=ZZ?=", "=?UTF-8?Q?a=ZZ?="),
        ("=?UTF-8?Q?unterminated", "=?UTF-8?Q?unterminated"),
        ("=??Q?x?=", "=??Q?x?="),
        ("a =?UTF-8?Q?b?= c", "a b c"),
        ("=?utf-8*en?q?hello?=", "hello"),
    ])
    func encodedWordsDecodeLeniently(_ input: String, _ expected: String) {
        #expect(EncodedWords.decode(input) == expected)
    }

    @Test func encodeRoundTrips() {
        let s = String(repeating: "Grüße, ", count: 20)
        let enc = EncodedWords.encodeIfNeeded(s)
        #expect(enc.split(separator: " ").allSatisfy { $0.count <= 75 })
        #expect(EncodedWords.decode(enc) == s)
    }

    @Test func nulInHeaderIsMalformed() throws {
        // Rejected with its octets, so a stream can set it aside and go on.
        let error = #expect(throws: RejectedMessage.self) { try Message(bytes: b("Subject: a\u{0}b\n\nbody\n")) }
        #expect(error?.reason == "NUL byte in the header section")
        #expect(error?.header == b("Subject: a\u{0}b\n\n"))
        #expect(try error?.body.readAll() == b("body\n"))
    }

    @Test func nulInBodyIsKept() throws {
        let text = b("Subject: a\n\nbin\u{0}ary\n")
        #expect(try Message(bytes: text).bytes() == text)
    }

    @Test func hugeHeaderLineParses() throws {
        let long = String(repeating: "a", count: 1 << 20)
        let m = try Message(bytes: b("Subject: \(long)\nTo: x@y\n\nbody\n"))
        #expect(m.header["Subject"]?.count == 1 << 20)
        #expect(m.header["To"] == "x@y")
    }

    @Test func headerLargerThanTheLimitIsMalformed() {
        var text = Bytes()
        let line = b("X-Filler: " + String(repeating: "z", count: 1000) + "\n")
        while text.count <= HeaderSection.maximumSize { text += line }
        #expect(throws: MessageError.self) { try Message(bytes: text + b("\nbody\n")) }
    }

    @Test func newFieldsUseTheSectionsLineEnding() throws {
        var lf = try Message(bytes: b("Subject: a\n\nx\n"))
        try lf.header.add("X-New", "1", atTop: true)
        #expect(try lf.bytes() == b("X-New: 1\nSubject: a\n\nx\n"))
        var crlf = try Message(bytes: b("Subject: a\r\n\r\nx\r\n"))
        try crlf.header.add("X-New", "1")
        #expect(try crlf.bytes() == b("Subject: a\r\nX-New: 1\r\n\r\nx\r\n"))
    }

    @Test(arguments: ["bad\nvalue", "bad\rvalue", "nul\u{0}"])
    func fieldValuesCannotInjectLines(_ value: String) {
        #expect(throws: MessageError.self) { try HeaderField.make(name: "X-Test", value: value) }
    }

    @Test func triggerRemovalKeepsTheRestOfTheField() throws {
        var m = try Message(bytes: b("Subject: Results +ENCRYPT+ inside\nTo: a@b\n\n"))
        m.header.removeText("+encrypt+", fromField: "Subject")
        #expect(try m.bytes() == b("Subject: Results inside\nTo: a@b\n\n"))
        var alone = try Message(bytes: b("Subject: +encrypt+\n\n"))
        alone.header.removeText("+encrypt+", fromField: "Subject")
        #expect(alone.header.first("Subject")?.unfoldedValue == "")
    }
}
