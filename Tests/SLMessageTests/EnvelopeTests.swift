import Testing
@testable import SLMessage

@Suite struct EnvelopeTests {
    let sample = Envelope(
        sender: "alice@clinic.example",
        recipients: [
            .init(address: "bob@example.org", parameters: [(.pgp, "E96466123FDE251413AE02B073AC2627BE6FD5CA"), (.book, "clinic")]),
            .init(address: "\"odd; <name>\"@example.org", parameters: [(.escrow, "question"), (.qa, "book:clinic")]),
            .init(address: "jörg@bücher.example"),
        ],
        method: .pgp, tls: .opportunistic, fallback: .bounce, account: "clinic")

    @Test func writesAtTheTopAndReadsBack() throws {
        var m = try Message(bytes: b("X-SL-Method: tls\nSubject: s\nx-sl-evil: 1\n\nbody\n"))
        try sample.write(into: &m.header)
        let names = m.header.fields.map(\.name)
        #expect(names == ["X-SL-Version", "X-SL-Envelope-From", "X-SL-Envelope-To", "X-SL-Envelope-To", "X-SL-Envelope-To",
                          "X-SL-Method", "X-SL-TLS", "X-SL-Fallback", "X-SL-Account", "Subject"])
        #expect(try Envelope.read(from: m.header) == sample)
        // every address is xtext: a hostile local part cannot end the address early
        // or add parameters
        let first = try #require(m.header.all("X-SL-Envelope-To").dropFirst().first)
        #expect(first.unfoldedValue == "\"odd+3B+20<name>\"@example.org; escrow=question; qa=book:clinic")
    }

    @Test func removeStripsAnyCase() throws {
        var m = try Message(bytes: b("x-Sl-Method: tls\nX-SL-: keep? no, prefix only\nSubject: s\n\n"))
        m.header.removeEnvelopeFields()
        #expect(m.header.fields.map(\.name) == ["X-SL-", "Subject"])
    }

    @Test(arguments: [
        "X-SL-Version: 1\nX-SL-Envelope-From: a@b\nX-SL-Method: carrier-pigeon\nX-SL-TLS: required\nX-SL-Fallback: bounce\nX-SL-Envelope-To: c@d\n\n",
        "X-SL-Version: 2\nX-SL-Envelope-From: a@b\nX-SL-Method: tls\nX-SL-TLS: required\nX-SL-Fallback: bounce\nX-SL-Envelope-To: c@d\n\n",
        "X-SL-Version: 1\nX-SL-Envelope-From: a@b\nX-SL-Method: tls\nX-SL-TLS: required\nX-SL-Fallback: bounce\n\n",
        "X-SL-Version: 1\nX-SL-Envelope-From: a@b\nX-SL-Method: tls\nX-SL-Method: pgp\nX-SL-TLS: required\nX-SL-Fallback: bounce\nX-SL-Envelope-To: c@d\n\n",
        "X-SL-Version: 1\nX-SL-Envelope-From: a+ZZ@b\nX-SL-Method: tls\nX-SL-TLS: required\nX-SL-Fallback: bounce\nX-SL-Envelope-To: c@d\n\n",
        "X-SL-Version: 1\nX-SL-Envelope-From: a@b\nX-SL-Method: tls\nX-SL-TLS: required\nX-SL-Fallback: bounce\nX-SL-Envelope-To: c@d; novalue\n\n",
        // a key outside the vocabulary
        "X-SL-Version: 1\nX-SL-Envelope-From: a@b\nX-SL-Method: tls\nX-SL-TLS: required\nX-SL-Fallback: bounce\nX-SL-Envelope-To: c@d; pgpp=AB\n\n",
    ])
    func brokenRoutingIsMalformed(_ text: String) throws {
        let m = try Message(bytes: b(text))
        #expect(throws: MessageError.self) { try Envelope.read(from: m.header) }
    }

    @Test func parametersMustBeTokens() throws {
        var m = try Message(bytes: b("Subject: s\n\n"))
        let bad = Envelope(sender: "a@b", recipients: [.init(address: "c@d", parameters: [(.qa, "x; y")])],
                           method: .escrow, tls: .opportunistic, fallback: .bounce)
        #expect(throws: MessageError.self) { try bad.write(into: &m.header) }
    }

    @Test(arguments: ["book:clinic", "default:domain", "pending:0123456789abcdef0123456789abcdef"])
    func answerSourcesRoundTrip(_ text: String) throws {
        #expect(try #require(Envelope.AnswerSource(parsing: text)).text == text)
    }

    @Test func unknownAnswerSourcesAreNone() {
        #expect(Envelope.AnswerSource(parsing: "carrier:pigeon") == nil && Envelope.AnswerSource(parsing: "book") == nil)
    }

    @Test(arguments: ["plain@example.org", "a+b=c;d@x", "ü@ß.example", "\"q u\"@x", ""])
    func xtextRoundTrips(_ s: String) {
        let e = XText.encode(s)
        #expect(e.utf8.allSatisfy { $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ";") })
        #expect(XText.decode(e) == s)
    }
}
