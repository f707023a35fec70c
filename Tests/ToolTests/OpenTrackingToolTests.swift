import Foundation
import Testing
import SLMessage

/// Open tracking end to end with the real tools and peers: sl-classify puts the
/// image into a TLS copy and a PGP copy (which the real gpg decrypts),
/// sl-encrypt-pgp encrypts it with the message, the real sl-portal records the
/// fetches curl makes over loopback, and sl-escrow receipts tells the sender once.
@Suite(.serialized) struct OpenTrackingToolTests {
    let home: GPGHome
    init() throws { home = try GPGHome.shared.get() }

    static let html = "<html><body><p>The results are fine.</p></body></html>"

    /// To a TLS-only domain (example.org) and to a recipient with a PGP key in the
    /// book (example.net), text and HTML alternatives.
    static func message(id: String) -> Bytes {
        bytes("""
        From: Alice <alice@clinic.test>
        To: carol@example.org, carol@example.net
        Subject: Results
        Message-ID: \(id)
        MIME-Version: 1.0
        Content-Type: multipart/alternative; boundary="alt"

        --alt
        Content-Type: text/plain; charset=utf-8

        The results are fine.
        --alt
        Content-Type: text/html; charset=utf-8
        Content-Transfer-Encoding: quoted-printable

        \(html)
        --alt--

        """)
    }

    /// The portal's installation, with Carol's PGP key for example.net in its book
    /// and TLS-only to example.org; `extra` more sl.conf lines.
    func installation(_ extra: String) throws -> PortalToolTests.Installation {
        let installation = try PortalToolTests.Installation("""
        tls_static = example.org=verified
        tls_only = yes
        pgp_homedir = \(home.path)
        \(extra)
        """)
        let key = Data(try home.export("carol@example.net")).base64EncodedString()
        let book = installation.dir.appendingPathComponent("book.vcf")
        let handle = try FileHandle(forWritingTo: book)
        handle.seekToEndOfFile()
        handle.write(Data("BEGIN:VCARD\r\nVERSION:4.0\r\nEMAIL:carol@example.net\r\nKEY:data:application/pgp-keys;base64,\(key)\r\nEND:VCARD\r\n".utf8))
        handle.closeFile()
        return installation
    }

    func classify(_ installation: PortalToolTests.Installation, _ message: Bytes) throws -> ToolRun {
        let run = try Tools.run("sl-classify", ["--config", installation.config, "--no-ask", "-t"], stdin: message)
        #expect(run.status == 0, "\(run.stderr)")
        return run
    }

    static func copy(_ messages: [Message], _ method: DeliveryMethod) throws -> Message {
        try #require(messages.first { (try? Envelope.read(from: $0.header))??.method == method })
    }

    /// The decoded HTML alternative of a message (or of a decrypted payload).
    static func htmlText(_ bytes: Bytes) throws -> String {
        let entity = try MIMEEntity.parse(bytes)
        let part = try #require(entity.parts.first { $0.contentType.mimeType == "text/html" })
        return String(decoding: try part.decodedBody(), as: UTF8.self)
    }

    static func imageURL(_ html: String) throws -> String {
        let image = try Regex(#"<img src="(https://portal\.clinic\.test/sl-escrow/t/[A-Za-z0-9_-]{43})" width="1" height="1" alt="">"#)
        let match = try #require(html.firstMatch(of: image), "no tracking image in \(html)")
        return String(html[match.output[1].range!])
    }

    @Test func aTLSAndAPGPCopyAreTrackedAndTheFetchesBecomeReceipts() throws {
        let installation = try installation("open_tracking = yes")
        let id = "<tracking-\(UUID().uuidString)@clinic.test>"
        let classified = try classify(installation, Self.message(id: id))
        #expect(!classified.stderr.contains("untracked"), "\(classified.stderr)")
        let routed = try Tools.messages(classified.stdout)
        #expect(routed.count == 2)

        // The TLS copy: the image before </body>, the text part untouched.
        let tls = try Self.copy(routed, .tls)
        let tlsHTML = try Self.htmlText(try tls.bytes())
        let tlsURL = try Self.imageURL(tlsHTML)
        #expect(tlsHTML == "\(Self.html.dropLast(14))\n<img src=\"\(tlsURL)\" width=\"1\" height=\"1\" alt=\"\">\n</body></html>")
        #expect(try MIMEEntity.parse(try tls.bytes()).parts[0].serialized() == MIMEEntity.parse(Self.message(id: id)).parts[0].serialized())

        // The PGP copy: encrypted by sl-encrypt-pgp with its image, which the real
        // gpg finds inside; the TLS copy passes through byte for byte.
        let encrypted = try Tools.run("sl-encrypt-pgp", ["--config", installation.config], stdin: classified.stdout)
        #expect(encrypted.status == 0, "\(encrypted.stderr)")
        let out = try Tools.messages(encrypted.stdout)
        #expect(try Self.copy(out, .tls).bytes() == tls.bytes())
        let pgp = try Self.copy(out, .pgp)
        #expect(!String(decoding: try pgp.bytes(), as: UTF8.self).contains("/sl-escrow/t/"), "the image is inside the ciphertext")
        let (payload, status) = try decryptPGPMIME(pgp, with: home)
        #expect(status.contains("DECRYPTION_OKAY"))
        let pgpURL = try Self.imageURL(try Self.htmlText(payload))
        #expect(pgpURL != tlsURL, "a token per copy")

        let tracked = try Tools.run("sl-escrow", ["tracked", "--config", installation.config, "--json"], stdin: [])
        #expect(tracked.status == 0, "\(tracked.stderr)")
        #expect(tracked.stdoutText.split(separator: "\n").count == 2 && !tracked.stdoutText.contains("firstOpen"))

        // The real portal records both fetches and answers them, and any other
        // token, with the same image; its log never holds a token.
        let server = try PortalToolTests.Server(installation)
        defer { if server.process.isRunning { _ = server.stop() } }
        try #require(server.port != 0)
        var replies: [PortalToolTests.Reply] = []
        for url in [tlsURL, pgpURL, tlsURL, "https://portal.clinic.test/sl-escrow/t/" + String(repeating: "A", count: 43),
                    "https://portal.clinic.test/sl-escrow/t/not-a-token"] {
            replies.append(try PortalToolTests.curl(server.local(url)))
        }
        for r in replies {
            #expect(r.status == 200 && r.headers["content-type"] == "image/gif" && r.body.hasPrefix("GIF89a"))
            #expect(r.headers["cache-control"] == "no-store")
            #expect(r.body == replies[0].body && r.headers["content-length"] == replies[0].headers["content-length"])
        }
        let log = server.logText
        for url in [tlsURL, pgpURL] { #expect(!log.contains(String(url.suffix(43))), "\(log)") }
        #expect(!log.contains("not-a-token") && log.contains("GET /sl-escrow/t/… 200"), "\(log)")

        // One receipt per copy, to the sender; none the second time.
        let receipts = try Tools.run("sl-escrow", ["receipts", "--config", installation.config], stdin: [])
        #expect(receipts.status == 0, "\(receipts.stderr)")
        let sent = try Tools.messages(receipts.stdout)
        #expect(sent.count == 2)
        for (recipient, text) in zip(["carol@example.org", "carol@example.net"], sent.map { String(decoding: try! $0.bytes(), as: UTF8.self) }) {
            #expect(text.contains("Your message \(id) to \(recipient) was opened on "), "\(text)")
            #expect(text.contains("To: alice@clinic.test"))
        }
        #expect(try sent.allSatisfy { try Envelope.read(from: $0.header)?.method == .insecure })
        let again = try Tools.run("sl-escrow", ["receipts", "--config", installation.config], stdin: [])
        #expect(again.status == 0 && again.stdout.isEmpty)
        let after = try Tools.run("sl-escrow", ["tracked", "--config", installation.config], stdin: [])
        #expect(after.stdoutText.split(separator: "\n").filter { $0.contains("sent") && $0.contains(id) }.count == 2, "\(after.stdoutText)")
        #expect(server.stop() == 0)
    }

    @Test func withoutOpenTrackingTheCopiesAreAsTheyCame() throws {
        let installation = try installation("")
        let input = Self.message(id: "<untracked@clinic.test>")
        for var copy in try Tools.messages(try classify(installation, input).stdout) {
            copy.header.removeEnvelopeFields()
            #expect(try copy.bytes() == input)
        }
    }

    /// No receipt could reach the null sender: its mail is not tracked.
    @Test func mailFromTheNullSenderIsNotTracked() throws {
        let installation = try installation("open_tracking = yes")
        let input = Self.message(id: "<bounce@clinic.test>")
        let run = try Tools.run("sl-classify", ["--config", installation.config, "--no-ask", "-f", "", "-t"], stdin: input)
        #expect(run.status == 0, "\(run.stderr)")
        let copies = try Tools.messages(run.stdout)
        #expect(copies.count == 2)
        for var copy in copies {
            copy.header.removeEnvelopeFields()
            #expect(try copy.bytes() == input)
        }
    }

    /// Tracking is never a reason to hold mail back.
    @Test func withoutAStoreTheCopyGoesUntrackedWithAWarning() throws {
        let installation = try installation("open_tracking = yes\nescrow_store = /dev/null/store")
        let input = Self.message(id: "<no-store@clinic.test>")
        let run = try classify(installation, input)
        #expect(run.stderr.contains("goes untracked"), "\(run.stderr)")
        for var copy in try Tools.messages(run.stdout) {
            copy.header.removeEnvelopeFields()
            #expect(try copy.bytes() == input)
        }
    }
}
