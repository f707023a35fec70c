#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLTestPeers
import Testing
import SLMessage

/// Login mode end to end: a login recipient without an account sets a password
/// with her notice's link, reads an HTML message with an inline image and an
/// attachment, uses the message center, resets her password by a link mailed
/// through sl-deliver to smtp-sink; the sender sees the open and withdraws the
/// message. A real headless Chromium walks it (Portal/accounts.py); afterwards
/// every log is searched for the secrets that passed through.
extension PortalToolTests {
    static let attachmentName = "Befund Müller.bin"
    static let htmlMarker = "HTML-Marker-5521: see the chart below"

    /// A multipart message: text, HTML with a cid: image and hostile bits, the
    /// image, and a binary attachment with a non-ASCII (RFC 2231) name.
    static func richMessage(to recipient: String, attachment: Bytes) -> Bytes {
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
        let html = """
            <html><head><script>xss()</script><style>body{background:url(http://XSSHOST/css)}</style></head>
            <body onload="xss()"><p>\(htmlMarker)</p><img src="cid:chart@clinic.test" alt="chart" width="20" height="20">
            <img src="http://XSSHOST/pixel.gif"><a href="javascript:xss()">click</a><svg onload="xss()"></svg>
            <a href="https://clinic.test/info">info</a></body></html>
            """
        let lines = Data(attachment).base64EncodedString(options: [.lineLength76Characters, .endLineWithLineFeed])
        return bytes("""
            From: Alice <alice@clinic.test>
            To: \(recipient)
            Subject: Results with a chart
            Date: Mon, 30 Nov 2026 09:00:00 +0000
            Message-ID: <portal-rich-\(UUID().uuidString)@clinic.test>
            MIME-Version: 1.0
            Content-Type: multipart/mixed; boundary="outer"

            --outer
            Content-Type: multipart/related; boundary="related"

            --related
            Content-Type: multipart/alternative; boundary="alt"

            --alt
            Content-Type: text/plain; charset=utf-8

            \(text)
            --alt
            Content-Type: text/html; charset=utf-8

            \(html)
            --alt--
            --related
            Content-Type: image/png
            Content-Transfer-Encoding: base64
            Content-ID: <chart@clinic.test>
            Content-Disposition: inline

            \(png)
            --related--
            --outer
            Content-Type: application/octet-stream
            Content-Transfer-Encoding: base64
            Content-Disposition: attachment; filename*=utf-8''Befund%20M%C3%BCller.bin

            \(lines)
            --outer--

            """)
    }

    @Test func loginModeMessageCenterAndPasswordResetInABrowser() throws {
        let sink = try SMTPSink([])
        let installation = try Installation("""
            escrow_login = yes
            escrow_message_center = yes
            audit_log = audit.jsonl
            transport_map = transport
            """)
        // smtp-sink writes as nobody: its own directory.
        let sinkDirectory = installation.dir.appendingPathComponent("sink").path
        try FileManager.default.createDirectory(atPath: sinkDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o777])
        let dump = sinkDirectory + "/mail"
        sink.stop()
        // The reset mail goes by sl-deliver to this smtp-sink, which appends it to a file.
        let mailbox = try SMTPSink(["-D", dump], port: sink.port)
        defer { mailbox.stop() }
        try "example.com smtp:[\(mailbox.address)]:\(mailbox.port)\n"
            .write(toFile: installation.dir.appendingPathComponent("transport").path, atomically: true, encoding: .utf8)

        let alicePassword = "alice's sender password"
        let pw = installation.dir.appendingPathComponent("alice.pw").path
        try (alicePassword + "\n").write(toFile: pw, atomically: true, encoding: .utf8)
        let add = try Tools.run("sl-escrow", ["account", "add", "--password-file", pw, "alice@clinic.test", "--config", installation.config], stdin: [])
        #expect(add.status == 0, "\(add.stderr)")

        var generator = SystemRandomNumberGenerator()
        let attachment = (0..<100_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let attachmentFile = installation.dir.appendingPathComponent("attachment.bin")
        try Data(attachment).write(to: attachmentFile)
        let digest = try Tools.runCommand(["sha256sum", attachmentFile.path], stdin: []).stdoutText.prefix(64)
        let routed = try Tools.run("sl-classify", ["--config", installation.config, "--no-ask", "-f", "alice@clinic.test", "erin@example.com"],
                                   stdin: Self.richMessage(to: "erin@example.com", attachment: attachment))
        #expect(routed.status == 0 && routed.stdoutText.contains("escrow=login"), "\(routed.stderr)")
        let packed = try Tools.run("sl-escrow-pack", ["--config", installation.config], stdin: routed.stdout)
        #expect(packed.status == 0, "\(packed.stderr)")
        #expect(packed.stdoutText.contains("choose a password"), "the notice says a password is to be chosen")
        let linkPattern = try Regex(#"https://portal\.clinic\.test/sl-escrow/[0-9a-f]{32}/[0-9]+#[A-Za-z0-9_-]+"#)
        let erinLink = String(packed.stdoutText[try #require(packed.stdoutText.firstMatch(of: linkPattern)).range])
        let erin = try #require(EscrowLinkParts(erinLink))

        let server = try Server(installation)
        defer { if server.process.isRunning { _ = server.stop() } }
        try #require(server.port != 0)
        let shots = Tools.outputDirectory.appendingPathComponent("portal-screenshots").path
        let spec: [String: Any] = [
            "portal": "http://127.0.0.1:\(server.port)/sl-escrow", "public": "https://portal.clinic.test/sl-escrow",
            "erin": "erin@example.com", "erin_link": server.local(erinLink), "erin_password": "erin's first password",
            "new_password": "erin's second password", "text": Self.text, "html_text": Self.htmlMarker,
            "attachment_name": Self.attachmentName, "attachment_sha256": String(digest),
            "sink_dump": dump, "alice": "alice@clinic.test", "alice_password": alicePassword, "shots": shots,
        ]
        let specFile = installation.dir.appendingPathComponent("spec.json").path
        try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: specFile))
        let script = Tools.repository.appendingPathComponent("Tests/ToolTests/Portal/accounts.py").path
        let walk = try Tools.runCommand(["python3", script, specFile], stdin: [])
        #expect(walk.status == 0, "accounts.py failed:\n\(walk.stdoutText)\n\(walk.stderr)\n\(server.logText)")
        print("portal screenshots: \(shots)")

        // The store agrees: withdrawn by Alice; Erin's account has its second key.
        let status = try Tools.run("sl-escrow", ["status", "--json", erin.id, "--config", installation.config], stdin: [])
        #expect(status.stdoutText.contains("\"retracted\""), "\(status.stdoutText)")
        #expect(server.stop() == 0)

        // The audit log has the account events, the request log every request; no
        // log holds a password, link secret, reset token or session key.
        let audit = (try? String(contentsOfFile: installation.dir.appendingPathComponent("audit.jsonl").path, encoding: .utf8)) ?? ""
        for event in ["\"open\"", "\"sign-in\"", "\"password link sent\"", "\"password reset\"", "\"retract\""] {
            #expect(audit.contains("\"event\":\(event)"), "audit log lacks \(event): \(audit)")
        }
        let mail = (try? String(contentsOfFile: dump, encoding: .utf8)) ?? ""
        let token = mail.firstMatch(of: try Regex(#"/account/password#([A-Za-z0-9_-]{43})"#)).map { String(mail[$0.range]) } ?? "none"
        #expect(token != "none", "\(mail)")
        let logs = [server.logText, audit] + ((try? FileManager.default.contentsOfDirectory(atPath: installation.dir.path)) ?? [])
            .filter { $0.hasSuffix(".log") }.compactMap { try? String(contentsOfFile: installation.dir.appendingPathComponent($0).path, encoding: .utf8) }
        for secret in [erin.secret, "erin's first password", "erin's second password", alicePassword, String(token.suffix(43))] {
            for log in logs { #expect(!log.contains(secret), "a log holds a secret") }
        }
    }
}

extension PortalToolTests {
    /// Every vector of the sanitizer's XSS corpus, each in an HTML part of its own,
    /// opened through the portal in Chromium (Portal/xss_portal.py): no script
    /// runs, nothing is stopped by the later layers (sandbox, CSP) because nothing
    /// reaches them, and no remote resource is requested.
    @Test func theXSSCorpusNeitherRunsNorLoadsInTheBrowser() throws {
        let installation = try Installation()
        let corpus = try String(contentsOf: Tools.repository.appendingPathComponent("Tests/SLHTMLTests/Fixtures/xss-vectors.txt"),
                                encoding: .utf8)
        let port = try Peers.freePort(type: SOCK_STREAM)
        let vectors = corpus.components(separatedBy: "\n%%\n").dropFirst().map {
            $0.replacingOccurrences(of: "XSSHOST", with: "127.0.0.1:\(port)").replacingOccurrences(of: "{NUL}", with: "")
        }
        #expect(vectors.count >= 80)
        // One HTML part (one frame) per vector: a vector that leaves an element or
        // comment open swallows only its own part.
        var body = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"vectors\"\n\n--vectors\n"
            + "Content-Type: text/plain; charset=utf-8\n\n\(Self.text)\n"
        for (i, vector) in vectors.enumerated() {
            let html = Data("<p>vector-\(i)</p>\n\(vector)".utf8).base64EncodedString(options: [.lineLength76Characters, .endLineWithLineFeed])
            body += "--vectors\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n\(html)\n"
        }
        let link = try installation.seal(raw: body + "--vectors--\n")
        let server = try Server(installation)
        defer { if server.process.isRunning { _ = server.stop() } }
        try #require(server.port != 0)
        let shot = Tools.outputDirectory.appendingPathComponent("portal-screenshots/portal-xss-corpus.png").path
        try FileManager.default.createDirectory(atPath: (shot as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let script = Tools.repository.appendingPathComponent("Tests/ToolTests/Portal/xss_portal.py").path
        let run = try Tools.runCommand(["python3", script, server.local(link), Self.answer, String(port), String(vectors.count), shot], stdin: [])
        #expect(run.status == 0, "xss_portal.py failed:\n\(run.stdoutText)\n\(run.stderr)")
        #expect(server.stop() == 0)
    }
}
