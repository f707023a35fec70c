import Foundation
import Testing
import SLMessage

/// Hostile and broken messages through the real binary: each one either classifies or
/// fails with exit 65 and one line on stderr. Never a crash, never a hang, never
/// partial output.
enum Hostile {
    static let head = "From: a@clinic.example\nTo: r@example.org\nSubject: hostile\n"

    static func nested(_ depth: Int) -> String {
        var s = ""
        for i in 0..<depth { s += "Content-Type: multipart/mixed; boundary=\"b\(i)\"\n\n--b\(i)\n" }
        s += "Content-Type: text/plain\n\ninnermost\n"
        for i in (0..<depth).reversed() { s += "--b\(i)--\n" }
        return s
    }

    static let cases: [(String, Bytes)] = [
        ("no header/body separator", bytes("From: a@clinic.example\nTo: r@example.org\nthis line is not a header\nmore\n")),
        ("headers only, no separator", bytes(head)),
        ("1 MB header line", bytes(head + "X-Long: " + String(repeating: "x", count: 1 << 20) + "\n\nbody\n")),
        ("1 MB line in body without newline", bytes(head + "\n") + Bytes(repeating: 0x41, count: 1 << 20)),
        ("NUL in header", bytes(head + "X-Bad: a\u{0}b\n\nbody\n")),
        ("NUL in body", bytes(head + "\nbin\u{0}ary\u{0}\n")),
        ("bare CR", bytes("From: a@clinic.example\rTo: r@example.org\nSubject: x\r\r\n\nbody\rmore\r")),
        ("10,000 recipients", bytes("From: a@clinic.example\nTo: " + (0..<10_000).map { "r\($0)@example.org" }.joined(separator: ",\n ") + "\n\nbody\n")),
        ("multipart nested 1,000 deep", bytes(head + "MIME-Version: 1.0\n" + nested(1000))),
        ("broken boundaries", bytes(head + "Content-Type: multipart/mixed; boundary=\"never\"\n\n--other\nx\n--never\n")),
        ("invalid encoded words", bytes("From: =?UTF-8?B?!!!?= <a@clinic.example>\nTo: =?x?Q?=ZZ?= <r@example.org>\nSubject: =?UTF-8?Q?unterminated\n\nbody\n")),
        ("encoded word in address", bytes("From: a@clinic.example\nTo: =?UTF-8?B?cg==?=@example.org\n\nbody\n")),
        ("only a From line", bytes("From x@y Mon Jan  1 00:00:00 2001\n")),
        ("invalid UTF-8 in header", bytes("From: a@clinic.example\nTo: r@example.org\nSubject: ") + [0xFF, 0xFE, 0xC0, 0x0A, 0x0A] + bytes("body\n")),
        ("truncated mbox", bytes("From a@b Mon Jan  1 00:00:00 2001\nFrom: a@clinic.example\nTo: r@example.org\nSubj")),
        ("header field with no name", bytes(": empty name\n" + head + "\nbody\n")),
        ("deeply nested comments in To", bytes("From: a@clinic.example\nTo: " + String(repeating: "(", count: 5000) + "r@example.org\n\n")),
        ("unterminated quoted string", bytes("From: a@clinic.example\nTo: \"r@example.org\n\n")),
        ("control characters in address", bytes("From: a@clinic.example\nTo: <r\u{7}@example.org>\n\n")),
    ]
}

@Suite struct HostileInputTests {
    @Test(arguments: Hostile.cases.map(\.0))
    func classifiesOrFailsCleanly(_ name: String) throws {
        let input = try #require(Hostile.cases.first { $0.0 == name }?.1)
        let policy = try PolicyFixture("fallback = insecure\n")
        let run = try policy.classify(["-t"], input)
        #expect(!run.signalled, "\(name): crashed")
        #expect(run.status == 0 || run.status == 65, "\(name): exit \(run.status) \(run.stderr)")
        if run.status == 65 {
            #expect(run.stdout.isEmpty)
            #expect(run.stderr.split(separator: "\n").count == 1, "\(name): \(run.stderr)")
        } else {
            #expect(!(try Tools.messages(run.stdout)).isEmpty)
        }
    }

    @Test func tenThousandRecipientsAllClassified() throws {
        let input = try #require(Hostile.cases.first { $0.0 == "10,000 recipients" }?.1)
        let policy = try PolicyFixture("fallback = insecure\n")
        let run = try policy.classify(["-t", "--json"], input)
        #expect(run.status == 0)
        let rows = try JSONSerialization.jsonObject(with: Data(run.stdout)) as? [[String: Any]]
        #expect(rows?.count == 10_000)
    }
}

@Suite struct LargeMessageTests {
    /// A large message is spooled, not held: peak memory stays far below its size.
    @Test func largeMessageRunsInBoundedMemory() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/time") else {
            Issue.record("/usr/bin/time is missing: install the Debian package time (make test does)")
            return
        }
        let size = 100 << 20
        var input = bytes("From: a@clinic.example\nTo: r@example.org\nSubject: big\n\n")
        let line = bytes(String(repeating: "0123456789abcdef", count: 4) + "\n")
        input.reserveCapacity(size + 100)
        while input.count < size { input += line }
        let policy = try PolicyFixture("fallback = insecure\n")
        let dir = try Tools.scratch()
        let rssFile = dir.appendingPathComponent("rss").path
        let run = try Tools.run("sl-classify", ["--config", policy.config, "-t"], stdin: input,
                                wrapper: ["/usr/bin/time", "-f", "%M", "-o", rssFile])
        #expect(run.status == 0, "\(run.stderr)")
        let out = try Tools.messages(run.stdout)
        #expect(out.first?.body.count == input.count - 55)
        let kib = Int(try String(contentsOfFile: rssFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) ?? .max
        #expect(Tools.underSanitizer || kib < 48 * 1024, "peak RSS \(kib) KiB for a \(size >> 20) MiB message")
    }
}
