import Testing
import SLDelivery
import SLMessage

/// The intake gives back what it was given: header fields as they came (routing
/// beside them), bodies small (in memory) and large (in their spool file), in order.
@Suite struct IntakeTests {
    @Test func messagesComeBackAsTheyWent() throws {
        let intake = Intake()
        let big = Array(repeating: Array("0123456789abcdef\n".utf8), count: 40_000).joined()   // 680 KB: spooled
        var originals: [[UInt8]] = []
        var envelopes: [Envelope] = []
        for i in 0..<30 {
            let body = i == 7 ? Array(big) : Array("Body \(i)\r\n.\n\u{e9}\n".utf8)
            let text = Array("From: a@example.org\r\nTo: b\(i)@example.org\r\nSubject: n\u{b0} \(i)\r\n\r\n".utf8) + body
            var m = try Message(bytes: text)
            let envelope = Envelope(sender: i == 3 ? "" : "a@example.org",
                                    recipients: [Envelope.Recipient(address: "b\(i)@example.org", parameters: i == 5 ? [(.escrow, "notice")] : [])],
                                    method: i == 5 ? .escrow : .insecure, tls: i == 9 ? .required : .opportunistic,
                                    fallback: .insecure, account: i == 2 ? "clinic" : nil)
            envelopes.append(envelope)
            try envelope.write(into: &m.header)        // routing fields are taken off
            intake.append(m, envelope: envelope)
            originals.append(text)
        }
        #expect(intake.count == 30)
        for i in [29, 0, 7, 13, 2, 3, 5, 9] {     // any order
            let (m, envelope) = intake.message(i)
            #expect(envelope == envelopes[i])
            #expect(try m.bytes() == originals[i])
            #expect(m.header["To"] == "b\(i)@example.org")
        }
        #expect(intake.message(7).0.body.isInMemory == false)
        // what the round counts against its bound: every message's octets
        #expect(intake.octets == originals.map(\.count).reduce(0, +))
        #expect(!intake.isFull)
    }
}
