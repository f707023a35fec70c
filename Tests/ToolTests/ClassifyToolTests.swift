#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import SLMessage

/// A configuration in a scratch directory, using the example address book.
struct PolicyFixture {
    let dir: URL
    var config: String { dir.appendingPathComponent("sl.conf").path }
    var audit: String { dir.appendingPathComponent("audit.jsonl").path }

    init(_ settings: String) throws {
        dir = try Tools.scratch()
        let head = """
        audit_log = audit.jsonl
        book clinic = \(Tools.examples.appendingPathComponent("books/clinic.vcf").path)
        default_book = clinic
        ask_sender = no
        hostname = mx.test.example
        tls_probe = no

        """
        try (head + settings).write(toFile: config, atomically: true, encoding: .utf8)
    }

    func classify(_ args: [String], _ input: Bytes) throws -> ToolRun {
        try Tools.run("sl-classify", ["--config", config] + args, stdin: input)
    }
}

let plainMessage = bytes("""
From: Alice <alice@clinic.example>
To: bob@example.org
Subject: Hello
Message-ID: <m1@clinic.example>

Body line
>From quoted in the original
From unquoted in the original

""")

@Suite struct ClassifyToolTests {
    @Test(arguments: [false, true])
    func passThroughIsByteIdenticalApartFromRouting(_ crlf: Bool) throws {
        var input = plainMessage + bytes("8-bit: Grüße\u{00}\n")
        if crlf { input = Array(String(decoding: input, as: UTF8.self).replacingOccurrences(of: "\n", with: "\r\n").utf8) }
        let policy = try PolicyFixture("tls_only = yes\ntls_static = example.org=verified\n")
        let run = try policy.classify(["-f", "alice@clinic.example", "bob@example.org"], input)
        #expect(run.status == 0, "\(run.stderr)")
        let out = try Tools.messages(run.stdout)
        #expect(out.count == 1)
        var m = try #require(out.first)
        let env = try #require(try Envelope.read(from: m.header))
        #expect(env.method == .tls && env.tls == .required && env.sender == "alice@clinic.example")
        #expect(env.recipients.map(\.address) == ["bob@example.org"])
        m.header.removeEnvelopeFields()
        #expect(try m.bytes() == input)
    }

    @Test func splitsByMethodAndStripsOutsideRouting() throws {
        let policy = try PolicyFixture("""
        tls_static = partner.example=verified
        escrow_accounts = \(Tools.examples.appendingPathComponent("escrow-accounts").path)
        [account clinic]
        domains = clinic.example
        tls_only = yes
        fallback = bounce

        """)
        let input = bytes("""
        From: alice@clinic.example
        To: bob@example.org, carol@example.net, dave@partner.example
        Cc: erin@example.com, frank@example.net, nobody@nowhere.example
        Bcc: secret@partner.example
        X-SL-Method: insecure
        X-SL-Envelope-To: attacker@evil.example
        Subject: results

        text

        """)
        let run = try policy.classify(["-t"], input)
        #expect(run.status == 0, "\(run.stderr)")
        let out = try Tools.messages(run.stdout)
        var byMethod: [DeliveryMethod: [[String]]] = [:]
        for m in out.dropLast() {   // the last one is the delivery report
            let e = try #require(try Envelope.read(from: m.header))
            byMethod[e.method, default: []].append(e.recipients.map(\.address))
            #expect(m.header.first("Bcc") == nil)
            #expect(m.header.all("X-SL-Envelope-To").allSatisfy { !$0.unfoldedValue.contains("attacker") })
        }
        #expect(byMethod[.tls] == [["dave@partner.example"], ["secret@partner.example"]])   // the Bcc alone
        #expect(byMethod[.pgp] == [["bob@example.org"]])
        #expect(byMethod[.smime] == [["carol@example.net"]])
        #expect(byMethod[.escrow] == [["erin@example.com", "frank@example.net"]])
        #expect(byMethod[.insecure] == nil)
        // the bounce: a delivery report to the sender, from the null sender
        let report = try #require(out.last)
        let renv = try #require(try Envelope.read(from: report.header))
        #expect(renv.sender == "" && renv.recipients.map(\.address) == ["alice@clinic.example"])
        #expect(report.header["Content-Type"]?.contains("multipart/report") == true)
        let text = String(decoding: try report.bytes(), as: UTF8.self)
        #expect(text.contains("Final-Recipient: rfc822; nobody@nowhere.example"))
        #expect(text.contains("Action: failed") && text.contains("Status: 5.7.0"))
        #expect(!text.contains("\ntext\n") && !text.contains("\r\ntext\r\n"))   // no body in a bounce
    }

    @Test func mboxStreamInOneProcess() throws {
        let policy = try PolicyFixture("fallback = insecure\n")
        var stream = Bytes()
        for i in 1...3 {
            stream += bytes("From alice@clinic.example Mon Jan  1 00:00:00 2001\nFrom: alice@clinic.example\nTo: r\(i)@example.org\nSubject: \(i)\n\n>From body \(i)\n\n")
        }
        let run = try policy.classify(["-t"], stream)
        #expect(run.status == 0, "\(run.stderr)")
        let out = try Tools.messages(run.stdout)
        #expect(out.count == 3)
        for (i, m) in out.enumerated() {
            #expect(try Envelope.read(from: m.header)?.recipients.map(\.address) == ["r\(i + 1)@example.org"])
            #expect(try m.body.readAll() == bytes("From body \(i + 1)\n"))
        }
    }

    @Test func explainAndJSON() throws {
        let policy = try PolicyFixture("fallback = bounce\n")
        let args = ["-f", "alice@clinic.example", "bob@example.org", "zed@example.org"]
        let json = try policy.classify(["--json"] + args, plainMessage)
        #expect(json.status == 0, "\(json.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout)) as? [[String: Any]])
        #expect(rows.map { $0["recipient"] as? String } == ["bob@example.org", "zed@example.org"])
        #expect(rows.map { $0["method"] as? String } == ["pgp", "bounce"])
        #expect(rows.allSatisfy { ($0["reason"] as? String)?.isEmpty == false })
        let text = try policy.classify(["--explain"] + args, plainMessage)
        #expect(text.stdoutText.contains("bob@example.org") && text.stdoutText.contains("pgp"))
        #expect(text.stdoutText.contains("step 7"))
        // explaining changes nothing: no audit records
        #expect(!FileManager.default.fileExists(atPath: policy.audit))
    }

    @Test func auditRecordsHaveNoContent() throws {
        let policy = try PolicyFixture("fallback = insecure\n")
        let run = try policy.classify(["-t"], plainMessage)
        #expect(run.status == 0, "\(run.stderr)")
        let lines = try String(contentsOfFile: policy.audit, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1)
        let rec = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(rec["recipient"] as? String == "bob@example.org")
        #expect(rec["method"] as? String == "pgp")
        #expect(rec["message_id"] as? String == "<m1@clinic.example>")
        #expect(rec["sender"] as? String == "alice@clinic.example")
        #expect(rec["time"] is String && rec["reason"] is String)
        #expect(!lines[0].contains("Body line") && !lines[0].contains("Hello"))
    }

    @Test func triggersChangeTheDecisionAndLeaveTheSubject() throws {
        let policy = try PolicyFixture("tls_only = yes\ntls_static = example.org=verified\nfallback = insecure\n")
        let msg = bytes("From: a@clinic.example\nTo: zed@example.org\nSubject: Lab +encrypt+ results\n\nx\n")
        let run = try policy.classify(["-t"], msg)
        let out = try Tools.messages(run.stdout)
        try #require(out.count == 1, "\(run.stderr)")
        // zed has no key: TLS-only is skipped, the fallback is never insecure, so the
        // only message out is the delivery report to the sender
        #expect(try Envelope.read(from: out[0].header)?.recipients.map(\.address) == ["a@clinic.example"])
        #expect(out[0].header["Content-Type"]?.contains("multipart/report") == true)
        let optOut = try PolicyFixture("tls_only = no\ninsecure_trigger = [plain]\nallow_insecure_trigger = yes\nfallback = bounce\n")
        let r2 = try optOut.classify(["-t"], bytes("From: a@clinic.example\nTo: zed@example.org\nSubject: [plain] newsletter\n\nx\n"))
        let o2 = try #require(try Tools.messages(r2.stdout).first, "\(r2.stderr)")
        #expect(try Envelope.read(from: o2.header)?.method == .insecure)
        #expect(o2.header["Subject"] == "newsletter")
    }

    /// RFC 8689's `TLS-Required: No` opts a message out as the insecure trigger does,
    /// only where the sender's policy allows it, never over a request for encryption,
    /// and the field travels on for the relays after us.
    @Test(arguments: [
        ("allow_insecure_trigger = yes\n", "TLS-Required: No\n", "insecure"),
        ("allow_insecure_trigger = yes\n", "TLS-Required:   no \n", "insecure"),
        ("allow_insecure_trigger = no\n", "TLS-Required: No\n", "tls"),
        ("", "TLS-Required: No\n", "tls"),
        ("allow_insecure_trigger = yes\n", "TLS-Required: No\nX-Encrypt: yes\n", "bounce"),
        ("allow_insecure_trigger = yes\n", "TLS-Required: Yes\n", "tls"),
        ("allow_insecure_trigger = yes\n", "TLS-Required: No\nTLS-Required: No\n", "tls"),
        ("allow_insecure_trigger = yes\n", "TLS-Required: No, please\n", "tls"),
    ])
    func tlsRequiredNoOptsOutWhereThePolicyAllows(_ policyLine: String, _ fields: String, _ method: String) throws {
        let policy = try PolicyFixture("tls_only = yes\ntls_static = example.org=verified\nfallback = bounce\n" + policyLine)
        let run = try policy.classify(["-t"], bytes("From: a@clinic.example\nTo: zed@example.org\nSubject: news\n" + fields + "\nx\n"))
        #expect(run.status == 0, "\(run.stderr)")
        let out = try Tools.messages(run.stdout)
        let first = try #require(out.first, "\(run.stderr)")
        if method == "bounce" {
            // encryption asked for, zed has no key: only the report to the sender
            #expect(out.count == 1 && first.header["Content-Type"]?.contains("multipart/report") == true)
            return
        }
        #expect(try Envelope.read(from: first.header)?.method.rawValue == method)
        #expect(first.header.all("TLS-Required").count == fields.components(separatedBy: "TLS-Required").count - 1)
    }

    @Test(arguments: [
        // (arguments, input, exit code, words the one error line must contain)
        (["-t"], "From: a@b.example\nSubject: x\u{0}y\nTo: c@d.example\n\n", Int32(65), "NUL"),
        (["-t"], "From: a@b.example\nSubject: none\n\n", Int32(65), "no recipients"),
        (["-t"], "From: a@b.example\nTo: <broken@\n\n", Int32(65), "To"),
        (["bad address@"], "From: a@b.example\n\n", Int32(64), "recipient"),
        ([], "From: a@b.example\n\n", Int32(64), "recipients"),
        (["-f", "<>", "x@example.org"], "Subject: x\n\n", Int32(69), "null sender"),
        (["--config", "/nonexistent/sl.conf", "x@example.org"], "Subject: x\n\n", Int32(78), "sl.conf"),
    ])
    func failuresGiveOneLineAnExitCodeAndNoOutput(_ args: [String], _ input: String, _ code: Int32, _ words: String) throws {
        let policy = try PolicyFixture("fallback = bounce\n")
        let run = try policy.classify(args, bytes(input))
        #expect(run.status == code, "\(run.stderr)")
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.hasPrefix("sl-classify:") || run.stderr.hasPrefix("Error:"))
        #expect(run.stderr.contains(words))
    }

    @Test func aStreamPassesOnWhatCameBeforeAFailure() throws {
        // A stream goes on message by message: the first is passed on (declaring
        // its length, so the next stage can tell it whole), the second fails the run.
        let policy = try PolicyFixture("fallback = insecure\n")
        let stream = bytes("From a@b Mon Jan  1 00:00:00 2001\nTo: ok@example.org\n\nfine\n\nFrom a@b Mon Jan  1 00:00:00 2001\nSubject: no recipients\n\n\n")
        let run = try policy.classify(["-t"], stream)
        #expect(run.status == 65)
        let out = String(decoding: run.stdout, as: UTF8.self)
        #expect(out.contains("X-SL-Length: 5\n") && out.contains("X-SL-Envelope-To: ok@example.org") && out.hasSuffix("\nfine\n\n"))
        #expect(!out.contains("no recipients"))
        #expect(run.stderr.contains("message 2"))
    }

    @Test func aOneMessageInputThatFailsWritesNothing() throws {
        let policy = try PolicyFixture("fallback = insecure\n")
        let run = try policy.classify(["-t", "--single-message"], bytes("From a@b Mon Jan  1 00:00:00 2001\nSubject: no recipients\n\nbody\n"))
        #expect(run.status == 65)
        #expect(run.stdout.isEmpty)
    }

    @Test func withARejectFileAMalformedMessageIsSetAsideAndTheRestGoesOn() throws {
        let policy = try PolicyFixture("fallback = insecure\n")
        let rejects = policy.dir.appendingPathComponent("rejects.mbox").path
        let stream = bytes("From a@b Mon Jan  1 00:00:00 2001\nTo: one@example.org\n\n1\n\n"
            + "From a@b Mon Jan  1 00:00:00 2001\nTo: two@example.org\nSubject: bad\u{0}\n\n2\n\n"
            + "From a@b Mon Jan  1 00:00:00 2001\nSubject: no recipients\n\n3\n\n"
            + "From a@b Mon Jan  1 00:00:00 2001\nTo: four@example.org\n\n4\n\n")
        let run = try policy.classify(["-t", "--reject-file", rejects], stream)
        #expect(run.status == 65)
        #expect(run.stderr.contains("2 malformed messages set aside in \(rejects)"), "\(run.stderr)")
        let out = String(decoding: run.stdout, as: UTF8.self)
        #expect(out.contains("X-SL-Envelope-To: one@example.org") && out.contains("X-SL-Envelope-To: four@example.org"))
        #expect(!out.contains("two@example.org"))
        let set = try String(contentsOfFile: rejects, encoding: .utf8)
        #expect(set.contains("X-SL-Rejected: sl-classify: NUL byte in the header section\nTo: two@example.org\nSubject: bad\u{0}\n\n2\n"))
        #expect(set.contains("X-SL-Rejected: sl-classify: malformed message: message 3: no recipients in To, Cc or Bcc\nSubject: no recipients\n\n3\n"), "\(set)")
        #expect(try FileManager.default.attributesOfItem(atPath: rejects)[.posixPermissions] as? Int == 0o600)
    }

    @Test func aForgedLengthFieldFromOutsideIsIgnoredAndRemoved() throws {
        let policy = try PolicyFixture("fallback = insecure\n")
        let stream = bytes("From a@b Mon Jan  1 00:00:00 2001\nX-SL-Length: 999\nX-SL-Version: 1\nTo: ok@example.org\n\nfine\n\n")
        let run = try policy.classify(["-t"], stream)
        #expect(run.status == 0, "\(run.stderr)")
        let out = String(decoding: run.stdout, as: UTF8.self)
        #expect(!out.contains("X-SL-Length: 999") && out.contains("X-SL-Length: 5\n"))
    }

    /// A stream stage passes a message on before it waits for the next one, even
    /// when part of the next one is already there: the stages of a pipeline work
    /// at the same time.
    @Test func aMessageIsPassedOnBeforeTheStageWaitsForTheNext() throws {
        let policy = try PolicyFixture("fallback = insecure\n")
        let p = Process()
        p.executableURL = Tools.binDirectory.appendingPathComponent("sl-classify")
        p.arguments = ["--config", policy.config, "-t"]
        let stdin = Pipe(), stdout = Pipe()
        p.standardInput = stdin
        p.standardOutput = stdout
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        // The first message whole, and the first lines of the second.
        try stdin.fileHandleForWriting.write(contentsOf: Data(bytes(
            "From a@b Mon Jan  1 00:00:00 2001\nTo: one@example.org\nSubject: first\n\nbody\n\n"
            + "From a@b Mon Jan  1 00:00:00 2001\nTo: two@example.org\n")))
        let reader = stdout.fileHandleForReading
        var got = Data()
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, !String(decoding: got, as: UTF8.self).contains("\nbody\n") {
            var pfd = pollfd(fd: reader.fileDescriptor, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 200) == 1 { got += reader.availableData }
        }
        let text = String(decoding: got, as: UTF8.self)
        #expect(text.contains("X-SL-Envelope-To: one@example.org") && text.contains("Subject: first"), "\(text)")
        #expect(!text.contains("two@example.org"))
        // The rest of the second message, then the end: it follows.
        try stdin.fileHandleForWriting.write(contentsOf: Data(bytes("Subject: second\n\nbody 2\n")))
        try stdin.fileHandleForWriting.close()
        got += reader.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(String(decoding: got, as: UTF8.self).contains("X-SL-Envelope-To: two@example.org"))
    }
}
