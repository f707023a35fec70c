import Testing
@testable import SLDelivery
import SLMessage

/// The DATA encoder and the size scan work on raw buffers, line by line; these
/// tables compare them with the rule written out octet by octet, over every way of
/// cutting the input into chunks (a message arrives from its spool in pieces).
@Suite struct WireEncodingTests {
    /// RFC 5321 4.5.2 the slow way: bare LF becomes CRLF, a line starting with "."
    /// gets another, and the end is CRLF "." CRLF (with a line break first if the
    /// message lacks a final one).
    static func reference(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [], lineStart = true, previous: UInt8 = 0
        for b in bytes {
            if lineStart && b == UInt8(ascii: ".") { out.append(b) }
            if b == 0x0A && previous != 0x0D { out.append(0x0D) }
            out.append(b)
            lineStart = b == 0x0A
            previous = b
        }
        if !lineStart { out += [0x0D, 0x0A] }
        return out + Array(".\r\n".utf8)
    }

    static func encode(_ bytes: [UInt8], cuts: [Int]) -> [UInt8] {
        var e = DataEncoder()
        var start = 0
        for cut in cuts + [bytes.count] where cut >= start {
            e.encode(bytes[start..<cut])
            start = cut
        }
        e.finish()
        return e.output
    }

    static let cases: [String] = [
        "", "a", "\n", "\r\n", ".", ".\n", "..\r\n", "a\nb", "a\r\nb\r\n", "\r", "\r\r\n", "a\r",
        "line\n.\n", ".hidden\n.\r\n..\n", "x\n.\n.\n", "\n\n\n.", "caf\u{e9}\n", "end without break",
        "From bob\n>From\n.From\n", "a\rb\nc\r\n.d",
    ]

    @Test(arguments: cases)
    func encodingMatchesTheRuleForEveryCut(_ text: String) {
        let bytes = Array(text.utf8)
        let expected = Self.reference(bytes)
        #expect(Self.encode(bytes, cuts: []) == expected)
        for cut in 0...bytes.count {
            #expect(Self.encode(bytes, cuts: [cut]) == expected, "cut at \(cut)")
        }
        #expect(Self.encode(bytes, cuts: Array(0...bytes.count)) == expected, "one octet at a time")
    }

    @Test func randomInputMatchesTheRule() {
        var rng = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [0x0A, 0x0D, UInt8(ascii: "."), UInt8(ascii: "a"), 0xC3, 0x20]
        for _ in 0..<500 {
            let bytes = (0..<Int.random(in: 0...200, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            let cuts = (0..<Int.random(in: 0...5, using: &rng)).map { _ in Int.random(in: 0...bytes.count, using: &rng) }.sorted()
            #expect(Self.encode(bytes, cuts: cuts) == Self.reference(bytes), "\(bytes) cut at \(cuts)")
            var scan = WireScan()
            var start = 0
            for cut in cuts + [bytes.count] where cut >= start { scan.add(bytes[start..<cut]); start = cut }
            let lfs = bytes.indices.filter { bytes[$0] == 0x0A && ($0 == 0 || bytes[$0 - 1] != 0x0D) }.count
            #expect(scan.size == bytes.count + lfs)
            #expect(scan.eightBit == bytes.contains { $0 >= 0x80 })
        }
    }
}

import SLTransport

/// Enhanced status codes (RFC 3463) taken from replies, or made from the reply code.
@Suite struct StatusCodeTests {
    @Test(arguments: [
        (250, "2.0.0 Ok: queued", "2.0.0"), (550, "5.1.1 <bob@x>: no such user", "5.1.1"),
        (550, "5.7.10 encryption needed", "5.7.10"), (451, "4.3.0 try later", "4.3.0"),
        (550, "4.1.1 class disagrees with code", "5.0.0"), (250, "Ok", "2.0.0"), (250, "2.0 short", "2.0.0"),
        (250, "2.0000.1 too many digits", "2.0.0"), (250, "2.000.1 three digits", "2.000.1"), (250, "2..0 empty part", "2.0.0"), (250, "\u{FF12}.0.0 fullwidth", "2.0.0"),
        (354, "3.0.0 not a class", "3.0.0"), (250, "", "2.0.0"), (421, "4.4.2", "4.4.2"), (250, "2.0.0.0 four parts", "2.0.0"),
    ])
    func status(code: Int, text: String, expected: String) {
        #expect(Deliverer.status(of: SMTPReply(code: code, lines: [text])).rawValue == expected)
    }
}
