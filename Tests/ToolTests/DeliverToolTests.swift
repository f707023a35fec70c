import Foundation
import Testing
import SLMessage
import SLTestPeers

/// sl-deliver, as built, delivering to real peers on loopback: Postfix smtpd with
/// TLS on, off and with bad certificates (found through dnsmasq), and smtp-sink
/// with its fault options.
@Suite struct DeliverToolTests {
    struct Setup {
        let dir: URL
        var config: String { dir.appendingPathComponent("sl.conf").path }
        var queue: String { dir.appendingPathComponent("queue").path }
        var cache: String { dir.appendingPathComponent("tls-cache.json").path }
        var audit: String { dir.appendingPathComponent("audit.jsonl").path }

        init(_ extra: String = "") throws {
            let peers = try Peers.shared.get()
            dir = try Tools.scratch()
            try (peers.configuration + """
            queue_directory = queue
            transport_map = transport
            \(extra)
            """).write(toFile: config, atomically: true, encoding: .utf8)
            try "".write(toFile: dir.appendingPathComponent("transport").path, atomically: true, encoding: .utf8)
        }

        func route(_ domain: String, to sink: SMTPSink) throws {
            try "\(domain) smtp:[\(sink.address)]:\(sink.port)\n".write(toFile: dir.appendingPathComponent("transport").path, atomically: true, encoding: .utf8)
        }

        func deliver(_ args: [String], _ input: Bytes) throws -> ToolRun {
            try Tools.run("sl-deliver", ["--config", config, "--timeout", "20"] + args, stdin: input)
        }

        /// sl-deliver started on `input` (a pipe the test writes, or a file), with
        /// its stderr in a pipe: for the tests that signal it while it runs.
        func started(input: Any) throws -> (process: Process, stderr: Pipe) {
            let p = Process()
            p.executableURL = Tools.binDirectory.appendingPathComponent("sl-deliver")
            p.arguments = ["--config", config, "--timeout", "20"]
            let stderr = Pipe()
            p.standardInput = input
            p.standardOutput = FileHandle.nullDevice
            p.standardError = stderr
            try p.run()
            return (p, stderr)
        }

        var queued: [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: queue)) ?? []).filter { $0.hasSuffix(".eml") }
        }

        func auditRecords() throws -> [[String: Any]] {
            try Tools.jsonLines(audit)
        }
    }

    /// A message routed the way sl-classify routes it: `tls` is the X-SL-TLS value
    /// (opportunistic for an insecure copy, required or dane for a TLS-only one).
    static func routed(to recipients: [String], tls: String, marker: String, sender: String = "alice@clinic.test", body: String = "Hello.\n") -> Bytes {
        let to = recipients.map { "X-SL-Envelope-To: \($0)\n" }.joined()
        return bytes("""
        X-SL-Version: 1
        X-SL-Envelope-From: \(sender)
        \(to)X-SL-Method: \(tls == "opportunistic" ? "insecure" : "tls")
        X-SL-TLS: \(tls)
        X-SL-Fallback: bounce
        From: Alice <\(sender)>
        To: \(recipients.joined(separator: ", "))
        Subject: \(marker)
        Date: Mon, 30 Nov 2026 09:00:00 +0000
        Message-ID: <\(marker)@clinic.test>

        \(body)
        """)
    }

    @Test func tlsOnlyMailArrivesOverVerifiedTLSByteForByte() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let marker = "m-\(UUID().uuidString)"
        let body = "Grüße, 8-bit line.\n.a line that starts with a dot\n..two dots\nlast line\n"
        let input = Self.routed(to: ["bob@on.test"], tls: "required", marker: marker, body: body)
        let run = try setup.deliver([], input)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(setup.queued.isEmpty)
        let arrived = try #require(peers.delivered(to: Peers.server("on"), containing: marker).first)
        #expect(arrived.contains("using TLSv1.3") || arrived.contains("using TLSv1.2"), "\(arrived)")
        // What arrived is what was sent, minus the routing fields, after Postfix's own trace fields.
        var sent = try Message(bytes: input)
        sent.header.removeEnvelopeFields()
        let sentText = String(decoding: try sent.bytes(), as: UTF8.self)
        #expect(arrived.hasSuffix(sentText), "arrived:\n\(arrived)")
        #expect(!arrived.contains("X-SL-"))
        let record = try #require(try setup.auditRecords().first)
        #expect(record["outcome"] as? String == "delivered")
        #expect(record["certificate"] as? String == "verified")
        #expect(record["mx"] as? String == "mx.on.test")
        #expect((record["tls_protocol"] as? String)?.hasPrefix("TLSv1.") == true)
    }

    @Test(arguments: ["off", "expired", "wrongname", "selfsigned"])
    func tlsOnlyMailIsNeverSentWithoutVerifiedTLS(tls: String) throws {
        let peers = try Peers.shared.get()
        let server = Peers.server(tls)
        let setup = try Setup()
        let marker = "m-\(UUID().uuidString)"
        let run = try setup.deliver([], Self.routed(to: ["bob@\(server.domain)"], tls: "required", marker: marker))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(peers.delivered(to: server, containing: marker, wait: 2).isEmpty)
        // Kept for a new decision, and the cache no longer claims verified TLS.
        #expect(setup.queued.count == 1)
        let cache = String(decoding: FileManager.default.contents(atPath: setup.cache) ?? Data(), as: UTF8.self)
        #expect(cache.contains(server.domain) && !cache.contains("\"verified\""), "\(cache)")
        #expect(try setup.auditRecords().first?["outcome"] as? String == "reroute")
    }

    /// RFC 8689: a TLS-only copy carries REQUIRETLS to a next hop that offers it, so
    /// the requirement travels past it; an opportunistic copy never does, nor does a
    /// copy to a hop that does not offer it (it would be refused with 555). A scripted
    /// peer stands in for the next hop: Postfix does not implement REQUIRETLS.
    @Test(arguments: [("requiretls", "required", true), ("requiretls", "opportunistic", false), ("ok", "required", false)])
    func requireTLSTravelsWithTLSOnlyCopiesWhereOffered(_ mode: String, _ tls: String, _ expected: Bool) throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let log = setup.dir.appendingPathComponent("mail-commands").path
        let server = try BadServer(mode: mode, certs: peers.certs, log: log)
        try "req.test smtp:[\(BadServer.mxHost)]:\(server.port)\n".write(toFile: setup.dir.appendingPathComponent("transport").path, atomically: true, encoding: .utf8)
        let run = try setup.deliver([], Self.routed(to: ["bob@req.test"], tls: tls, marker: "m-\(UUID().uuidString)"))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try setup.auditRecords().map { $0["outcome"] as? String } == ["delivered"], "\(run.stderr)")
        let commands = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(commands.count == 1 && commands[0].hasPrefix("TLS MAIL FROM:<alice@clinic.test>"), "\(commands)")
        #expect(commands.first?.hasSuffix(" REQUIRETLS") == expected, "\(commands)")
        withExtendedLifetime(server) {}
    }

    @Test func tlsOnlyMailGoesBackForANewDecision() throws {
        let setup = try Setup("reroute_command = cat > \"$(dirname \"$SL_SENDER_FILE\")/rerouted.eml\"; echo \"$SL_SENDER $*\" > \"$(dirname \"$SL_SENDER_FILE\")/rerouted.args\"\n")
        // the command finds its directory through the environment set below
        let marker = "m-\(UUID().uuidString)"
        let run = try Tools.run("sl-deliver", ["--config", setup.config], stdin: Self.routed(to: ["bob@off.test"], tls: "required", marker: marker),
                                env: ["SL_SENDER_FILE": setup.dir.appendingPathComponent("x").path])
        #expect(run.status == 0, "\(run.stderr)")
        let rerouted = String(decoding: FileManager.default.contents(atPath: setup.dir.appendingPathComponent("rerouted.eml").path) ?? Data(), as: UTF8.self)
        #expect(rerouted.contains(marker) && !rerouted.contains("X-SL-"), "\(rerouted)")
        let args = String(decoding: FileManager.default.contents(atPath: setup.dir.appendingPathComponent("rerouted.args").path) ?? Data(), as: UTF8.self)
        #expect(args == "alice@clinic.test bob@off.test\n")
        #expect(setup.queued.isEmpty)
    }

    @Test(arguments: ["off", "expired", "selfsigned"])
    func opportunisticMailIsSent(tls: String) throws {
        let peers = try Peers.shared.get()
        let server = Peers.server(tls)
        let setup = try Setup()
        let marker = "m-\(UUID().uuidString)"
        let run = try setup.deliver([], Self.routed(to: ["bob@\(server.domain)"], tls: "opportunistic", marker: marker))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(peers.delivered(to: server, containing: marker).count == 1)
        #expect(setup.queued.isEmpty)
    }

    @Test func sendmailStyleWithSeveralDomainsAndOneConnectionPerDomain() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let marker = "m-\(UUID().uuidString)"
        let input = bytes("From: Alice <alice@clinic.test>\nTo: bob@on.test, carol@off.test\nCc: dave@on.test\nBcc: erin@on.test\nSubject: \(marker)\n\nHello.\n")
        let run = try setup.deliver(["-f", "alice@clinic.test", "-t", "-oi"], input)
        #expect(run.status == 0, "\(run.stderr)")
        let onCopies = peers.delivered(to: Peers.server("on"), containing: marker, atLeast: 3)
        #expect(onCopies.count == 3)                   // bob, dave, erin: one per mailbox
        #expect(onCopies.allSatisfy { !$0.contains("Bcc:") })
        #expect(peers.delivered(to: Peers.server("off"), containing: marker).count == 1)
        #expect(Set(try setup.auditRecords().compactMap { $0["outcome"] as? String }) == ["delivered"])
    }

    @Test func permanentFailureBouncesToTheSender() throws {
        let peers = try Peers.shared.get()
        let sink = try SMTPSink(["-f", "RCPT"])
        let setup = try Setup()
        try setup.route("sink.test", to: sink)
        let marker = "m-\(UUID().uuidString)"
        // the sender is at on.test, so the delivery report arrives there
        let run = try setup.deliver([], Self.routed(to: ["bob@sink.test"], tls: "opportunistic", marker: marker, sender: "alice@on.test"))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(setup.queued.isEmpty)
        let reports = peers.delivered(to: Peers.server("on"), containing: marker)
        let report = try #require(reports.first)
        #expect(report.contains("multipart/report"))
        #expect(report.contains("Final-Recipient: rfc822; bob@sink.test"))
        #expect(report.contains("Action: failed"))
        #expect(report.contains("could not be delivered"))
        #expect(!report.contains("policy for your account"))
        let outcomes = try setup.auditRecords().compactMap { $0["outcome"] as? String }
        #expect(outcomes == ["failed", "delivered"])   // bob, then the report to alice
    }

    @Test func deferredRecipientsWaitInTheQueueAndGoWhenTheServerIsBack() throws {
        let setup = try Setup()
        let down = try SMTPSink(["-r", "RCPT"])
        try setup.route("sink.test", to: down)
        let marker = "m-\(UUID().uuidString)"
        let run = try setup.deliver([], Self.routed(to: ["bob@sink.test", "carol@on.test"], tls: "opportunistic", marker: marker))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(setup.queued.count == 1)
        // Only bob is left in the queued copy: carol must not get it twice.
        let queuedText = String(decoding: FileManager.default.contents(atPath: setup.queue + "/" + setup.queued[0]) ?? Data(), as: UTF8.self)
        #expect(queuedText.contains("X-SL-Envelope-To: bob@sink.test"))
        #expect(!queuedText.contains("X-SL-Envelope-To: carol"))
        let queuedID = String(setup.queued[0].dropLast(".eml".count))

        // Not due yet: nothing happens.
        #expect(try setup.deliver(["--run-queue"], []).status == 0)
        #expect(setup.queued.count == 1)

        down.stop()
        let up = try SMTPSink([], port: down.port)
        _ = up
        let retry = try setup.deliver(["--run-queue", "--force"], [])
        #expect(retry.status == 0, "\(retry.stderr)")
        #expect(setup.queued.isEmpty)
        let outcomes = try setup.auditRecords().compactMap { r -> String? in
            guard let o = r["outcome"] as? String, let who = r["recipient"] as? String else { return nil }
            return "\(who) \(o)"
        }
        #expect(outcomes.filter { $0.hasPrefix("carol") } == ["carol@on.test delivered"])
        #expect(outcomes.filter { $0.hasPrefix("bob") } == ["bob@sink.test deferred", "bob@sink.test delivered"])
        // Bob's records name the queue item and say which attempt each was.
        let bob = try setup.auditRecords().filter { $0["recipient"] as? String == "bob@sink.test" }
        #expect(bob.map { $0["queue_id"] as? String } == [queuedID, queuedID])
        #expect(bob.map { $0["attempt"] as? Int } == [1, 2])
        #expect(bob.map { $0["retry"] as? Bool } == [nil, true])
        let carol = try setup.auditRecords().filter { $0["recipient"] as? String == "carol@on.test" }
        #expect(carol.count == 1 && carol[0]["queue_id"] as? String == queuedID && carol[0]["message_id"] as? String == "<\(marker)@clinic.test>")
    }

    /// Every stage's 4xx, 5xx and hang-up, with and without PIPELINING.
    @Test(arguments: [
        (["-f", "MAIL"], "failed"), (["-r", "MAIL"], "deferred"), (["-q", "MAIL"], "deferred"),
        (["-f", "RCPT"], "failed"), (["-q", "RCPT"], "deferred"),
        (["-f", "DATA"], "failed"), (["-r", "DATA"], "deferred"), (["-q", "DATA"], "deferred"),
        (["-f", "."], "failed"), (["-r", "."], "deferred"),
        (["-p", "-f", "RCPT"], "failed"), (["-p", "-r", "DATA"], "deferred"), (["-p"], "delivered"),
        (["-e"], "delivered"),                                   // no ESMTP: HELO
    ])
    func faultsAtEveryStage(sinkOptions: [String], outcome: String) throws {
        let sink = try SMTPSink(sinkOptions)
        let setup = try Setup()
        try setup.route("sink.test", to: sink)
        let run = try setup.deliver(["--timeout", "5"], Self.routed(to: ["bob@sink.test", "carol@sink.test"], tls: "opportunistic",
                                                                    marker: "m-\(UUID().uuidString)", sender: ""))
        #expect(run.status == 0, "\(run.stderr)")
        let outcomes = try setup.auditRecords().compactMap { $0["outcome"] as? String }
        #expect(outcomes == [outcome, outcome], "\(sinkOptions): \(outcomes)")
        #expect(setup.queued.count == (outcome == "deferred" ? 1 : 0))
    }

    @Test func unreachableAndSilentHostsDefer() throws {
        let peers = try Peers.shared.get()
        let silent = try BadServer(mode: "silent", certs: peers.certs)
        let setup = try Setup()
        try "quiet.test smtp:[\(silent.address)]:\(silent.port)\n".write(toFile: setup.dir.appendingPathComponent("transport").path, atomically: true, encoding: .utf8)
        let start = Date()
        let run = try setup.deliver(["--timeout", "2"], Self.routed(to: ["bob@down.test", "carol@quiet.test"], tls: "opportunistic",
                                                                    marker: "m-\(UUID().uuidString)", sender: ""))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(Date().timeIntervalSince(start) < 15)
        let records = try setup.auditRecords()
        #expect(records.map { $0["outcome"] as? String } == ["deferred", "deferred"])
        #expect(records.contains { ($0["reply"] as? String)?.contains("refused") == true })
        #expect(records.contains { ($0["reply"] as? String)?.contains("timed out") == true })
        withExtendedLifetime(silent) {}
    }

    @Test func aServerThatHangsUpMidDataDefers() throws {
        let sink = try SMTPSink(["-q", "."])
        let setup = try Setup()
        try setup.route("sink.test", to: sink)
        let run = try setup.deliver([], Self.routed(to: ["bob@sink.test"], tls: "opportunistic", marker: "m-\(UUID().uuidString)"))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(setup.queued.count == 1)
        #expect(try setup.auditRecords().first?["outcome"] as? String == "deferred")
    }

    @Test func eightBitMailToAServerWithout8BITMIMEFailsCleanly() throws {
        let sink = try SMTPSink(["-8"])
        let setup = try Setup()
        try setup.route("sink.test", to: sink)
        let run = try setup.deliver([], Self.routed(to: ["bob@sink.test"], tls: "opportunistic", marker: "m-\(UUID().uuidString)",
                                                    sender: "", body: "Grüße\n"))
        #expect(run.status == 0, "\(run.stderr)")
        let record = try #require(try setup.auditRecords().first)
        #expect(record["outcome"] as? String == "failed")
        #expect(record["status"] as? String == "5.6.3")
    }

    @Test func expiredRecipientsBounce() throws {
        let setup = try Setup("queue_lifetime = 0.00001\n")     // about a second
        let down = try SMTPSink(["-r", "RCPT"])
        try setup.route("sink.test", to: down)
        _ = try setup.deliver([], Self.routed(to: ["bob@sink.test"], tls: "opportunistic", marker: "m-\(UUID().uuidString)", sender: ""))
        #expect(setup.queued.count == 1)
        sleep(2)
        let retry = try setup.deliver(["--run-queue", "--force"], [])
        #expect(retry.status == 0, "\(retry.stderr)")
        #expect(setup.queued.isEmpty)     // null sender: bounced without a report
        #expect(retry.stderr.contains("null sender"))
    }

    /// A stage missing from the pipeline must not turn into plaintext on the wire.
    @Test(arguments: ["pgp", "smime", "escrow"])
    func unprotectedMessagesRoutedToProtectionAreRefused(method: String) throws {
        let setup = try Setup()
        var text = String(decoding: Self.routed(to: ["bob@on.test"], tls: "opportunistic", marker: "m-\(UUID().uuidString)"), as: UTF8.self)
        text = text.replacingOccurrences(of: "X-SL-Method: insecure", with: "X-SL-Method: \(method)")
        let run = try setup.deliver([], bytes(text))
        #expect(run.status == 75, "\(run.stderr)")
        #expect(run.stderr.contains("routed to \(method)"), "\(run.stderr)")
        #expect(setup.queued.isEmpty)
        let dry = try setup.deliver(["--dry-run"], bytes(text))
        #expect(dry.stdoutText.contains("NOT SENT"), "\(dry.stdoutText)")
    }

    @Test func throughARelayOverVerifiedSTARTTLS() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let marker = "m-\(UUID().uuidString)"
        let run = try setup.deliver(["--relay", "mx.on.test:\(peers.smtpPort)"],
                                    Self.routed(to: ["bob@example.net", "carol@example.org"], tls: "opportunistic", marker: marker))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(peers.delivered(to: Peers.server("on"), containing: marker, atLeast: 2).count == 2)
        #expect(setup.queued.isEmpty)
    }

    @Test func aRelayWithoutVerifiedTLSGetsNothing() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let marker = "m-\(UUID().uuidString)"
        for relay in ["mx.off.test", "mx.expired.test"] {
            let run = try setup.deliver(["--relay", "\(relay):\(peers.smtpPort)"],
                                        Self.routed(to: ["bob@example.net"], tls: "opportunistic", marker: marker))
            #expect(run.status == 0, "\(run.stderr)")
        }
        #expect(peers.delivered(to: Peers.server("off"), containing: marker, wait: 2).isEmpty)
        #expect(peers.delivered(to: Peers.server("expired"), containing: marker, wait: 1).isEmpty)
        #expect(setup.queued.count == 2)
        #expect(try setup.auditRecords().allSatisfy { $0["outcome"] as? String == "deferred" })
    }

    @Test func relayCredentialsMustBePrivate() throws {
        let setup = try Setup("relay = mx.on.test:587\nrelay_credentials = secret\n")
        let secret = setup.dir.appendingPathComponent("secret").path
        try "user\npassword\n".write(toFile: secret, atomically: true, encoding: .utf8)
        chmod(secret, 0o644)
        let run = try setup.deliver(["-f", "a@b.test", "x@y.test"], bytes("Subject: x\n\nbody\n"))
        #expect(run.status == 78, "\(run.stderr)")
        #expect(run.stderr.contains("chmod 600"))
        #expect(!run.stderr.contains("password"))
        #expect(setup.queued.isEmpty)
    }

    /// An empty stream is nothing to do (`sl-escrow receipts | sl-deliver` from cron
    /// with no receipts): exit 0, nothing queued. A failure upstream shows in
    /// sl-send's status, not here.
    @Test func emptyInputIsNothingToDo() throws {
        let setup = try Setup()
        let run = try setup.deliver([], [])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.isEmpty && run.stdout.isEmpty)
        #expect(setup.queued.isEmpty)
    }

    @Test func theMboxFromLineGivesTheSender() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let marker = "m-\(UUID().uuidString)"
        let run = try setup.deliver(["--single-message", "bob@on.test"],
                                    bytes("From alice@clinic.test Mon Nov 30 09:00:00 2026\nSubject: \(marker)\n\nbody\n"))
        #expect(run.status == 0, "\(run.stderr)")
        let arrived = try #require(peers.delivered(to: Peers.server("on"), containing: marker).first)
        #expect(arrived.hasPrefix("Return-Path: <alice@clinic.test>"), "\(arrived)")
    }

    /// Inside reroute_command's pipeline, TLS-only mail without verified TLS is
    /// queued, not re-routed again (no recursion).
    @Test func noReroutingInsideARerouting() throws {
        let setup = try Setup("reroute_command = exit 0\n")
        let run = try Tools.run("sl-deliver", ["--config", setup.config], stdin: Self.routed(to: ["bob@off.test"], tls: "required", marker: "m-\(UUID().uuidString)"),
                                env: ["SL_REROUTED": "1"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(setup.queued.count == 1)
        #expect(run.stderr.contains("kept in the queue"))
    }

    @Test func dryRunSendsAndQueuesNothing() throws {
        let setup = try Setup()
        let run = try setup.deliver(["--dry-run"], Self.routed(to: ["bob@on.test", "carol@off.test"], tls: "required", marker: "dry"))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdoutText.contains("TLS required"))
        #expect(run.stdoutText.contains("bob@on.test: MX of on.test"))
        #expect(setup.queued.isEmpty)
    }

    @Test(arguments: [
        ([String](), "Subject: x\n\nbody\n", Int32(65), "no recipients"),
        (["-f", "a@b.test", "not an address"], "Subject: x\n\nbody\n", 64, "recipient"),
        (["--run-queue", "x@y.test"], "", 64, "--run-queue"),
        (["--force"], "", 64, "--force"),
        (["--relay-tls", "sometimes", "x@y.test"], "", 64, "--relay-tls"),
    ])
    func badInput(args: [String], input: String, status: Int32, words: String) throws {
        let setup = try Setup()
        let run = try setup.deliver(args, bytes(input))
        #expect(run.status == status, "\(run.stderr)")
        #expect(run.stderr.contains(words), "\(run.stderr)")
        #expect(run.stderr.split(separator: "\n").count == 1)
        #expect(setup.queued.isEmpty)
    }
}
