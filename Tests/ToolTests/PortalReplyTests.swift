#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLTestPeers
import Testing
import SLMessage

/// Secure reply and SecureSend end to end, with the installed tools (sl-portal
/// hands mail to sl-send beside it) and the real Postfix MX hosts of the test
/// peers: the reply reaches the original sender's mailbox at on.test threaded to
/// the original, through the pipeline; a SecureSend message waits for the link
/// mailed to its sender (delivered by Postfix at off.test), then reaches the
/// staff mailbox at on.test over verified TLS (--require-tls); an unconfirmed one
/// never does; header injection through the form is refused.
extension PortalToolTests {
    static func peersInstallation(_ extra: String) throws -> (Installation, Peers) {
        let peers = try Peers.shared.get()
        let lines = peers.configuration.split(separator: "\n").filter { !$0.hasPrefix("hostname") && !$0.hasPrefix("tls_cache") }
        let installation = try Installation(lines.joined(separator: "\n") + "\n" + extra)
        return (installation, peers)
    }

    @Test func aSecureReplyAndASecureSendMessageReachTheirMailboxes() throws {
        let (installation, peers) = try Self.peersInstallation("""
            internal_domains = on.test
            portal_max_replies = 1
            portal_securesend = yes
            portal_securesend_recipients = @on.test
            """)
        let marker = UUID().uuidString.prefix(8)
        let originalID = "<original-\(marker)@on.test>"
        let link = try installation.seal(from: "Alice <alice@on.test>", messageID: originalID)
        let server = try Server(installation, command: [try Installed.bin("sl-portal"), "--config", installation.config])
        defer { if server.process.isRunning { _ = server.stop() } }
        try #require(server.port != 0)

        var generator = SystemRandomNumberGenerator()
        let replyFile = installation.dir.appendingPathComponent("scan-\(marker).pdf")
        let replyBytes = (0..<20_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try Data(replyBytes).write(to: replyFile)
        let sendFile = installation.dir.appendingPathComponent("letter.txt")
        try "Letter-\(marker)\n".write(to: sendFile, atomically: true, encoding: .utf8)
        let spec: [String: Any] = [
            "portal": "http://127.0.0.1:\(server.port)/sl-escrow", "public": "https://portal.clinic.test/sl-escrow",
            "carol_link": server.local(link), "answer": Self.answer,
            "reply_text": "Reply-\(marker): thank you, see the scan.", "reply_file": replyFile.path,
            "visitor": "visitor@off.test", "staff": "staff@on.test", "subject": "Question-\(marker)",
            "send_text": "SecureSend-\(marker): my question.", "send_file": sendFile.path,
            "unconfirmed_text": "Unconfirmed-\(marker)", "visitor_maildir": peers.maildir(Peers.server("off")),
            "shots": Tools.outputDirectory.appendingPathComponent("portal-screenshots").path,
        ]
        let specFile = installation.dir.appendingPathComponent("spec.json").path
        try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: specFile))
        let script = Tools.repository.appendingPathComponent("Tests/ToolTests/Portal/reply_securesend.py").path
        let walk = try Tools.runCommand(["python3", script, specFile], stdin: [])
        #expect(walk.status == 0, "reply_securesend.py failed:\n\(walk.stdoutText)\n\(walk.stderr)\n\(server.logText)")

        // The reply, at Alice's mailbox: from Carol, threaded, its attachment intact.
        let on = Peers.server("on")
        let replies = peers.delivered(to: on, containing: "Reply-\(marker)")
        try #require(replies.count == 1, "the reply did not arrive once: \(replies.count)\n\(server.logText)")
        let reply = try Message(bytes: Array(replies[0].utf8))
        #expect(reply.header["From"] == "carol@example.org" && reply.header["To"] == "alice@on.test")
        #expect(reply.header["In-Reply-To"] == originalID && reply.header["References"]?.contains(originalID) == true)
        #expect(reply.header.first("Subject")?.decodedValue == "Re: Grüße from the lab")
        let parts = try MIMEEntity.parse(try reply.bytes()).parts
        let attachment = try #require(parts.first { $0.contentDisposition?.filename == "scan-\(marker).pdf" })
        #expect(try attachment.decodedBody() == replyBytes)
        let status = try Tools.run("sl-escrow", ["status", "--config", installation.config, try #require(EscrowLinkParts(link)).id], stdin: [])
        #expect(status.stdoutText.contains("replied"), "\(status.stdoutText)")

        // SecureSend: delivered to staff once confirmed, over verified TLS, with its origin plain.
        let sent = peers.delivered(to: on, containing: "SecureSend-\(marker)")
        try #require(sent.count == 1, "\(server.logText)")
        let inbound = try Message(bytes: Array(sent[0].utf8))
        #expect(inbound.header["From"] == "visitor@off.test" && inbound.header["To"] == "staff@on.test")
        #expect(inbound.header["X-SecureSend"]?.contains("proven by a one-time link") == true)
        #expect(sent[0].contains("Letter-\(marker)") || sent[0].contains(Data("Letter-\(marker)\n".utf8).base64EncodedString()))
        #expect(sent[0].contains("TLS"), "Postfix records the TLS session in Received")
        let audit = (try? String(contentsOfFile: installation.dir.appendingPathComponent("audit.jsonl").path, encoding: .utf8)) ?? ""
        #expect(audit.contains("\"method\":\"tls\"") && audit.contains("staff@on.test"), "\(audit)")
        // The unconfirmed one never arrives.
        usleep(1_000_000)
        #expect(peers.delivered(to: on, containing: "Unconfirmed-\(marker)", wait: 0).isEmpty)
        #expect(server.stop() == 0)
    }

    /// Header injection through every field of the form, and a file name: each
    /// refused with one line saying why; nothing is held, mailed or delivered.
    @Test func theSecureSendFormRefusesHeaderInjection() throws {
        let (installation, peers) = try Self.peersInstallation("""
            portal_securesend = yes
            portal_securesend_recipients = staff@on.test
            """)
        let server = try Server(installation, command: [try Installed.bin("sl-portal"), "--config", installation.config])
        defer { if server.process.isRunning { _ = server.stop() } }
        try #require(server.port != 0)
        let page = "http://127.0.0.1:\(server.port)/sl-escrow/send"
        let jar = installation.dir.appendingPathComponent("jar").path
        let csrf = try Self.token(try Self.curl(page, jar: jar).body)
        let marker = "Injected-\(UUID().uuidString.prefix(8))"
        let file = installation.dir.appendingPathComponent("f.txt").path
        try "x".write(toFile: file, atomically: true, encoding: .utf8)
        let good = ["from": "visitor@off.test", "to": "staff@on.test", "subject": "Hello", "text": marker]
        let hostile: [(String, String, String)] = [
            ("from", "visitor@off.test\r\nBcc: evil@off.test", "email address"),
            ("to", "staff@on.test\r\nBcc: evil@off.test", "email address"),
            ("subject", "Hello\r\nBcc: evil@off.test", "one line"),
            ("subject", "Hello\nX-Injected: yes", "one line"),
            ("to", "evil@off.test", "cannot write to"),
            ("from", "Visitor <visitor@off.test>", "email address"),
        ]
        for (field, value, why) in hostile {
            var form = good
            form[field] = value
            var argv = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-b", jar, "-c", jar, "-F", "csrf=\(csrf)"]
            for (k, v) in form.sorted(by: { $0.key < $1.key }) { argv += ["-F", "\(k)=\(v)"] }
            argv.append(page)
            let r = try Tools.runCommand(argv, stdin: [])
            let lines = r.stdoutText.split(separator: "\n")
            #expect(lines.last == "400", "\(field)=\(value.debugDescription): \(lines.last ?? "")")
            #expect(r.stdoutText.contains(why), "\(field): \(r.stdoutText.prefix(600))")
        }
        // A file name with a line break: browsers and curl escape one, so the body
        // is written by hand, as an attacker would.
        let raw = try Tools.runCommand(["python3", "-c", """
            import http.client, sys
            port, csrf, marker = int(sys.argv[1]), sys.argv[2], sys.argv[3]
            b = "----sl-test-boundary"
            fields = {"csrf": csrf, "from": "visitor@off.test", "to": "staff@on.test", "subject": "Hi", "text": marker}
            body = "".join(f'--{b}\\r\\nContent-Disposition: form-data; name="{k}"\\r\\n\\r\\n{v}\\r\\n' for k, v in fields.items())
            body += f'--{b}\\r\\nContent-Disposition: form-data; name="files"; filename="a\\rBcc: evil@off.test.txt"\\r\\n'
            body += f'Content-Type: text/plain\\r\\n\\r\\nx\\r\\n--{b}--\\r\\n'
            c = http.client.HTTPConnection("127.0.0.1", port)
            c.request("POST", "/sl-escrow/send", body.encode(), {"Content-Type": f"multipart/form-data; boundary={b}",
                                                                 "Cookie": f"sl_csrf={csrf}"})
            r = c.getresponse()
            print(r.status, r.read().decode())
            """, String(server.port), csrf, marker], stdin: [])
        #expect(raw.stdoutText.hasPrefix("400") && raw.stdoutText.contains("one line"), "\(raw.stdoutText.prefix(300)) \(raw.stderr)")
        usleep(1_000_000)
        for server in [Peers.server("on"), Peers.server("off")] {
            #expect(peers.delivered(to: server, containing: marker, wait: 0).isEmpty)
            #expect(peers.delivered(to: server, containing: "evil@off.test", wait: 0).isEmpty)
        }
        #expect(server.stop() == 0)
    }
}

extension PortalToolTests {
    /// A SecureSend sender with an escrow account signs in instead of confirming by
    /// mail: the message goes at once (over verified TLS), and the message center
    /// lists it.
    @Test func aSignedInSenderSendsAtOnceAndSeesItInTheCenter() throws {
        let (installation, peers) = try Self.peersInstallation("""
            portal_securesend = yes
            portal_securesend_recipients = staff@on.test
            """)
        let pw = installation.dir.appendingPathComponent("pw").path
        try "visitor's long password\n".write(toFile: pw, atomically: true, encoding: .utf8)
        let add = try Tools.run("sl-escrow", ["account", "add", "--password-file", pw, "visitor@off.test", "--config", installation.config], stdin: [])
        #expect(add.status == 0, "\(add.stderr)")
        let server = try Server(installation, command: [try Installed.bin("sl-portal"), "--config", installation.config])
        defer { if server.process.isRunning { _ = server.stop() } }
        try #require(server.port != 0)
        let base = "http://127.0.0.1:\(server.port)/sl-escrow"
        let jar = installation.dir.appendingPathComponent("jar").path
        let csrf = try Self.token(try Self.curl(base + "/account", jar: jar).body)
        let center = try Self.curl(base + "/account", form: [("csrf", csrf), ("address", "visitor@off.test"),
                                                               ("password", "visitor's long password")], jar: jar)
        #expect(center.status == 200 && center.body.contains("Written on the form"), "\(center.status)")
        let form = try Self.curl(base + "/send", jar: jar)
        #expect(form.body.contains("Sending as <strong>visitor@off.test</strong>"))
        let marker = "Account-\(UUID().uuidString.prefix(8))"
        let sent = try Tools.runCommand(["curl", "-s", "-b", jar, "-c", jar, "-F", "csrf=\(csrf)", "-F", "to=staff@on.test",
                                         "-F", "subject=From my account", "-F", "text=\(marker)", base + "/send"], stdin: [])
        #expect(sent.stdoutText.contains("is on its way"), "\(sent.stdoutText.suffix(400))\n\(server.logText)")
        let delivered = peers.delivered(to: Peers.server("on"), containing: marker)
        try #require(delivered.count == 1)
        #expect(delivered[0].contains("signed in with an escrow account"))
        let listed = try Self.curl(base + "/messages", jar: jar)
        #expect(listed.body.contains("To staff@on.test") && listed.body.contains("delivered"), "\(listed.body)")
        #expect(server.stop() == 0)
    }
}
