import Foundation
import Testing
import SLMessage
import SLTestPeers

/// sl as a clinic deploys it, end to end, with real peers only:
///
/// - a real Postfix gateway that hands outgoing mail to the `sl` service of
///   examples/postfix-master.cf (pipe(8) as user `sl`, PATH=/usr/bin:/bin, no HOME),
///   and the recipe of examples/procmailrc run by procmail as user `sl`;
/// - the installed `sl-send` (bin-scripts) and tools, side by side in a prefix;
/// - real Postfix MX hosts (TLS verified and plaintext) found through dnsmasq or
///   the transport map, and the recipients' clients: gpg and openssl decrypt.
///
/// One message goes to a recipient of every method, a recipient whose book key was
/// revoked, a Bcc recipient and a colleague. The first attempt meets an escrow store
/// the mail user cannot open (a temporary failure of one copy): nothing may leave,
/// and the retry must deliver every copy exactly once.
@Suite(.serialized) struct GatewayTests {
    /// The recipients of one scenario; `p` keeps scenarios apart in the shared
    /// MX mailboxes (each scenario has its own keys and certificate).
    struct Cast {
        let p: String
        var tls: String { "\(p)-tina@on.test" }
        var pgp: String { "\(p)-bob@example.org" }
        var revoked: String { "\(p)-revoked@example.org" }
        var smime: String { "\(p)-rsa@example.org" }
        var escrow: String { "\(p)-erin@example.net" }
        var bcc: String { "\(p)-carol@example.net" }
        var colleague: String { "\(p)-colleague@clinic.test" }
        let sender = "alice@clinic.test"
        var visible: [String] { [tls, pgp, smime, revoked, escrow, colleague] }
        var everyone: [String] { visible + [bcc] }
        var marker: String { "gateway-\(p)-lab-results" }

        func message(bcc: Bool) -> String {
            "From: Dr. Alice <\(sender)>\nTo: \(visible.joined(separator: ", "))\n" + (bcc ? "Bcc: \(self.bcc)\n" : "")
                + "Subject: Lab results\nDate: Mon, 30 Nov 2026 09:00:00 +0000\nMessage-ID: <\(p)-\(UUID().uuidString)@clinic.test>\n"
                + "\nDear patient,\n\(marker): all values are normal.\n"
        }
    }

    /// A scenario's configuration, address book, keys and state, owned by the mail user.
    struct Scene {
        let cast: Cast
        let dir: String
        let home: GPGHome
        var conf: String { dir + "/sl.conf" }
        var escrowStore: String { dir + "/state/escrow" }
        var certDir: String { dir + "/smime" }

        init(_ p: String, _ extra: String = "") throws {
            cast = Cast(p: p)
            home = try GPGHome.shared.get()
            let peers = try Peers.shared.get()
            dir = try Tools.scratch().path
            for who in [cast.pgp, cast.bcc] { try home.ensureKey(who) }
            let revoked = try home.revokedKey(cast.revoked)
            try Self.makeCertificate(for: cast.smime, in: certDir)
            let der = try Tools.runCommand(["openssl", "x509", "-in", certDir + "/rsa.pem", "-outform", "DER"], stdin: []).stdout
            try [Card.pgp(cast.pgp, try home.export(cast.pgp)), Card.pgp(cast.bcc, try home.export(cast.bcc)),
                 Card.pgp(cast.revoked, revoked.key), Card.smime(cast.smime, der),
                 Card.question(cast.escrow, "Which street is the clinic in?", "Elm Street")].joined()
                .write(toFile: dir + "/clinic.vcf", atomically: true, encoding: .utf8)
            try routeColleagues(to: "smtp:[\(Peers.deadAddress)]:\(peers.smtpPort)")
            try (peers.configuration + """
            transport_map   = transport
            state_directory = state
            escrow_url      = https://mail.clinic.test/sl-escrow
            book clinic     = clinic.vcf
            default_book    = clinic
            smime_anchors   = smime/ca.pem
            smime_system_cas = no
            tls_static      = on.test=verified, example.org=none, example.net=none
            tls_probe       = no
            hostname        = mx.clinic.test
            \(extra)
            [account clinic]
            domains  = clinic.test
            tls_only = yes
            fallback = bounce

            """).write(toFile: conf, atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: escrowStore, withIntermediateDirectories: true)
            try MailUser.own(dir)
        }

        /// The transport map: the recipients' domains to the plaintext MX host (found
        /// by MX lookup for on.test), the clinic's own domain to `route`.
        func routeColleagues(to route: String) throws {
            let peers = try Peers.shared.get()
            let offTest = Peers.server("off").address
            try """
            example.org  smtp:[\(offTest)]:\(peers.smtpPort)
            example.net  smtp:[\(offTest)]:\(peers.smtpPort)
            clinic.test  \(route)

            """.write(toFile: dir + "/transport", atomically: true, encoding: .utf8)
            try MailUser.own(dir + "/transport")
        }

        /// A CA and an S/MIME certificate for `email` made with the openssl command.
        static func makeCertificate(for email: String, in dir: String) throws {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=emailProtection\nsubjectAltName=email:\(email)\n"
                .write(toFile: dir + "/ext.cnf", atomically: true, encoding: .utf8)
            for argv in [
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "\(dir)/ca.key",
                 "-out", "\(dir)/ca.pem", "-days", "30", "-subj", "/CN=sl gateway test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(dir)/rsa.key", "-out", "\(dir)/rsa.csr", "-subj", "/CN=\(email)"],
                ["openssl", "x509", "-req", "-in", "\(dir)/rsa.csr", "-CA", "\(dir)/ca.pem", "-CAkey", "\(dir)/ca.key", "-CAcreateserial",
                 "-days", "30", "-extfile", "\(dir)/ext.cnf", "-out", "\(dir)/rsa.pem"],
            ] {
                let r = try Tools.runCommand(argv, stdin: [])
                guard r.status == 0 else { throw UsageFailure("\(argv.prefix(3).joined(separator: " ")): \(r.stderr)") }
            }
        }

        /// gpg leaves an agent running for the mail user's GnuPG home (the state
        /// directory's gnupg/, made by sl-encrypt-pgp): stop it with the test.
        func stopAgents() {
            _ = try? MailUser.run(["gpgconf", "--homedir", dir + "/state/gnupg", "--kill", "all"], stdin: [])
        }

        /// Makes the escrow store unusable for the mail user (a temporary failure of
        /// the escrow copy), or usable again.
        func escrowStore(usable: Bool) {
            chmod(escrowStore, usable ? 0o700 : 0)
        }
    }

    /// A documented snippet with the install prefix and configuration of a test:
    /// the only changes made to what users copy.
    static func installed(_ snippet: String, conf: String) throws -> String {
        snippet.replacingOccurrences(of: "/usr/local/bin/sl-send", with: try Installed.bin("sl-send") + " --config " + conf)
    }

    /// The `sl` service of examples/postfix-master.cf: its first line and the
    /// indented lines after it.
    static func exampleService() throws -> String {
        let text = try String(contentsOf: Tools.examples.appendingPathComponent("postfix-master.cf"), encoding: .utf8)
        var lines: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if lines.isEmpty {
                if line.hasPrefix("sl ") { lines.append(line) }
            } else if line.first == " " || line.first == "\t" {
                lines.append(line)
            } else {
                break
            }
        }
        try #require(lines.count == 3, "the sl service in examples/postfix-master.cf")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Delivered copies addressed to `who` (Postfix's Delivered-To) among `texts`.
    static func copies(_ texts: [String], for who: String) -> [String] {
        texts.filter { $0.contains("Delivered-To: \(who)\n") }
    }

    /// Everything delivered so far to the MX host `tls` and to the `extra` maildir.
    static func mailboxes(_ peers: Peers, gateway: Gateway? = nil) -> [String] {
        var all: [String] = []
        for tls in ["on", "off"] { all += peers.delivered(to: Peers.server(tls), containing: "Delivered-To:", wait: 0) }
        if let gateway { all += gateway.delivered(containing: "Delivered-To:") }
        return all
    }

    /// Waits until `who` has at least one copy, for up to 15 s.
    static func waitFor(_ who: [String], _ peers: Peers, gateway: Gateway?) -> [String] {
        let end = Date().addingTimeInterval(15)
        while true {
            let all = mailboxes(peers, gateway: gateway)
            if who.allSatisfy({ !copies(all, for: $0).isEmpty }) || Date() > end { return all }
            usleep(200_000)
        }
    }

    /// Every check on what the recipients got: exactly one right copy each, the
    /// refused recipient reported to the sender, nobody revealed to anyone.
    static func checkMailboxes(_ scene: Scene, _ all: [String], reports: [String]) throws {
        let c = scene.cast
        for who in c.everyone where who != c.revoked {
            #expect(copies(all, for: who).count == 1, "\(who): \(copies(all, for: who).count) copies")
        }
        #expect(copies(all, for: c.revoked).isEmpty, "the refused recipient got nothing")
        for text in all where c.everyone.contains(where: { text.contains("Delivered-To: \($0)\n") }) {
            #expect(!text.contains("X-SL-"), "routing fields never leave")
        }

        // TLS-only: plaintext content over verified TLS.
        let tls = try #require(copies(all, for: c.tls).first)
        #expect(tls.contains("using TLSv1.3") || tls.contains("using TLSv1.2"), "\(tls.prefix(800))")
        #expect(tls.contains(c.marker))

        // PGP: Bob's copy holds Bob's key only; the Bcc recipient's holds hers only.
        for who in [c.pgp, c.bcc] {
            let text = try #require(copies(all, for: who).first)
            #expect(!text.contains(c.marker), "\(who)'s copy is encrypted")
            let m = try Message(bytes: Array(text.utf8))
            let (payload, status) = try decryptPGPMIME(m, with: scene.home)
            #expect(String(decoding: payload, as: UTF8.self).contains(c.marker))
            #expect(status.components(separatedBy: "ENC_TO ").count - 1 == 1, "\(who): \(status)")
            // and the one key it is encrypted to is that recipient's own
            let encryptedTo = status.split(separator: "\n").compactMap { line -> String? in
                let words = line.split(separator: " ")
                return words.count > 2 && words[1] == "ENC_TO" ? String(words[2]) : nil
            }
            let listing = String(decoding: try scene.home.gpg(["--with-colons", "--list-keys", "<\(who)>"]), as: UTF8.self)
            let ownKeyIDs = listing.split(separator: "\n").filter { $0.hasPrefix("sub:") || $0.hasPrefix("pub:") }
                .map { String($0.split(separator: ":", omittingEmptySubsequences: false)[4]) }
            #expect(!encryptedTo.isEmpty && encryptedTo.allSatisfy(ownKeyIDs.contains), "\(who): \(encryptedTo) not in \(ownKeyIDs)")
        }
        #expect(!(try #require(copies(all, for: c.pgp).first)).contains(c.bcc), "no copy names the Bcc recipient")

        // S/MIME: openssl opens it with the recipient's key.
        let smime = try #require(copies(all, for: c.smime).first)
        #expect(!smime.contains(c.marker))
        let opened = try Tools.runCommand(["openssl", "cms", "-decrypt", "-recip", scene.certDir + "/rsa.pem", "-inkey", scene.certDir + "/rsa.key"],
                                          stdin: Array(smime.utf8))
        #expect(opened.status == 0 && opened.stdoutText.contains(c.marker), "\(opened.stderr)")

        // Escrow: a notice with a link, not the content, and no other recipient.
        let notice = try #require(copies(all, for: c.escrow).first)
        #expect(notice.contains("https://mail.clinic.test/sl-escrow/") && !notice.contains(c.marker))
        #expect(!notice.contains(c.bcc) && !notice.contains(c.pgp))

        // The colleague: delivered as the MTA would, plainly.
        let colleague = try #require(copies(all, for: c.colleague).first)
        #expect(colleague.contains(c.marker) && !colleague.contains("multipart/encrypted"))

        // The refused recipient: one report to the sender, for exactly them, and no
        // other report about this message.
        let aboutThis = reports.filter { $0.contains("Message-ID: <\(c.p)-") }
        #expect(aboutThis.count == 1, "\(aboutThis.count) reports: \(aboutThis.map { $0.components(separatedBy: "Final-Recipient:").dropFirst().map { $0.prefix(60) } })")
        let mine = reports.filter { $0.contains("Final-Recipient: rfc822; \(c.revoked)") }
        #expect(mine.count == 1, "\(mine.count) reports")
        if let report = mine.first {
            #expect(report.contains("multipart/report") && report.contains("Status: 5.7.5") && report.contains("revoked"))
            #expect(report.components(separatedBy: "Final-Recipient:").count == 2)
            #expect(!report.contains(c.marker), "a report never carries the content back")
        }
    }

    @Test func aPostfixGatewayHandsEachRecipientExactlyOneRightCopy() throws {
        let peers = try Peers.shared.get()
        let service = try Self.exampleService()
        let s = try Scene("pf")
        let gw = try Gateway(domains: ["clinic.test"], filterService: try Self.installed(service, conf: s.conf))
        defer { gw.stop(); s.stopAgents() }
        // The colleague's copy comes back to the gateway, as examples/postfix-master.cf says.
        try s.routeColleagues(to: "smtp:[\(gw.address)]:\(gw.port)")
        let c = s.cast

        // A colleague alone: Postfix delivers it without the filter.
        let nurse = "\(c.p)-nurse@clinic.test"
        let internalOnly = "From: \(c.sender)\nTo: \(nurse)\nSubject: lunch\n\ninternal-only-\(c.p)\n"
        try gw.submit(from: c.sender, to: [nurse], message: internalOnly)
        try gw.waitUntilIdle()
        #expect(gw.delivered(containing: "internal-only-\(c.p)").count == 1)
        #expect(!gw.log().contains("relay=sl"), "mail between colleagues never reaches the filter")

        // First attempt: the escrow store is unusable, so the whole message waits.
        s.escrowStore(usable: false)
        try gw.submit(from: c.sender, to: c.everyone, message: c.message(bcc: false))
        try gw.waitUntilIdle()
        #expect(try gw.deferredCount() == 1, "deferred, not bounced: \(gw.log().suffix(3000))")
        #expect(gw.log().contains("relay=sl") && gw.log().contains("status=deferred"))
        usleep(500_000)
        let early = Self.mailboxes(peers, gateway: gw)
        for who in c.everyone {
            #expect(Self.copies(early, for: who).isEmpty, "\(who) got something from the failed attempt")
        }

        // The retry: every recipient exactly once, the refused one reported.
        s.escrowStore(usable: true)
        try gw.flush()
        try gw.waitUntilIdle()
        #expect(try gw.deferredCount() == 0, "\(gw.log().suffix(3000))")
        let all = Self.waitFor(c.everyone.filter { $0 != c.revoked }, peers, gateway: gw)
        let end = Date().addingTimeInterval(10)
        var reports = Self.copies(gw.delivered(containing: "multipart/report"), for: c.sender)
        while reports.isEmpty && Date() < end { usleep(200_000); reports = Self.copies(gw.delivered(containing: "multipart/report"), for: c.sender) }
        try Self.checkMailboxes(s, all, reports: reports)
        #expect(!gw.log().contains("status=bounced"), "\(gw.log().suffix(3000))")
    }

    @Test func theProcmailRecipeHandsEachRecipientExactlyOneRightCopy() throws {
        let peers = try Peers.shared.get()
        // No gateway here: the colleague's copy goes to the plaintext MX host too.
        // procmail gives the account's HOME; its GnuPG home stays in the test's state.
        let s = try Scene("pm", "pgp_homedir = state/gnupg")
        try s.routeColleagues(to: "smtp:[\(Peers.server("off").address)]:\(peers.smtpPort)")
        defer { s.stopAgents() }
        let c = s.cast
        let recipe = try Self.installed(try String(contentsOf: Tools.examples.appendingPathComponent("procmailrc"), encoding: .utf8), conf: s.conf)
        let rc = s.dir + "/procmailrc"
        try recipe.write(toFile: rc, atomically: true, encoding: .utf8)
        // procmail hands the message over with its own From_ line; the Bcc field is there.
        let input = bytes("From \(c.sender) Mon Nov 30 09:00:00 2026\n" + c.message(bcc: true))

        s.escrowStore(usable: false)
        let failed = try MailUser.run(["procmail", "-m", rc], stdin: input)
        #expect(failed.status == 75, "the MTA keeps the message: \(failed.stderr)")
        usleep(500_000)
        let early = Self.mailboxes(peers)
        for who in c.everyone { #expect(Self.copies(early, for: who).isEmpty, "\(who) got something from the failed attempt") }

        s.escrowStore(usable: true)
        let run = try MailUser.run(["procmail", "-m", rc], stdin: input)
        #expect(run.status == 0, "\(run.stderr)")
        let all = Self.waitFor(c.everyone.filter { $0 != c.revoked } + [c.sender], peers, gateway: nil)
        try Self.checkMailboxes(s, all, reports: Self.copies(all, for: c.sender))
    }
}
