import Foundation
import Testing
import SLMessage
import SLTestPeers

/// Suites run side by side and share the GnuPG home: keys are made one at a time
/// (gpg has failed making two at once in one home).
private let keyMaking = NSLock()

extension GPGHome {
    /// A key for `who` (signing primary, encryption subkey), made once.
    func ensureKey(_ who: String) throws {
        keyMaking.lock(); defer { keyMaking.unlock() }
        guard (try? fingerprint(who)) == nil else { return }
        try gpg(["--quick-gen-key", "\(who.split(separator: "@")[0]) <\(who)>", "ed25519", "cert", "never"])
        try gpg(["--quick-add-key", try fingerprint(who), "cv25519", "encr", "never"])
    }

    /// A key for `who` in this home, then revoked (its revocation certificate
    /// imported): the public key with the revocation, as a stale book entry holds it.
    func revokedKey(_ who: String) throws -> (fingerprint: String, key: Bytes) {
        keyMaking.lock(); defer { keyMaking.unlock() }
        if (try? fingerprint(who)) == nil {
            try gpg(["--quick-gen-key", "Revoked <\(who)>", "ed25519", "cert", "never"])
            let f = try fingerprint(who)
            try gpg(["--quick-add-key", f, "cv25519", "encr", "never"])
            let rev = try String(contentsOfFile: "\(path)/openpgp-revocs.d/\(f).rev", encoding: .utf8)
                .replacingOccurrences(of: ":-----BEGIN", with: "-----BEGIN")
            try gpg(["--import"], stdin: Array(rev.utf8))
        }
        return (try fingerprint(who), try export(who))
    }
}

/// vCard 4 entries for test address books.
enum Card {
    static func pgp(_ email: String, _ key: Bytes) -> String {
        entry(email, "KEY:data:application/pgp-keys;base64,\(Data(key).base64EncodedString())")
    }
    static func smime(_ email: String, _ der: Bytes) -> String {
        entry(email, "KEY:data:application/pkix-cert;base64,\(Data(der).base64EncodedString())")
    }
    static func question(_ email: String, _ q: String, _ a: String) -> String {
        entry(email, "X-SL-ESCROW-QUESTION:\(q)\r\nX-SL-ESCROW-ANSWER:\(a)")
    }
    static func entry(_ email: String, _ lines: String) -> String {
        "BEGIN:VCARD\r\nVERSION:4.0\r\nEMAIL:\(email)\r\n\(lines)\r\nEND:VCARD\r\n"
    }
}

/// The routing of a message in a stream.
func routing(_ m: Message) -> Envelope? { (try? Envelope.read(from: m.header)) ?? nil }

/// How many public-key encrypted session keys (one per recipient key) a PGP/MIME
/// message carries, as gpg's status lines count them.
func pgpRecipientKeys(_ m: Message, _ home: GPGHome) throws -> Int {
    let (_, status) = try decryptPGPMIME(m, with: home)
    return status.components(separatedBy: "ENC_TO ").count - 1
}

/// The contract every stage keeps (sl(7)): failures per recipient, hidden
/// recipients in copies of their own, internal mail unfiltered, empty input as
/// nothing to do, dry runs that change nothing, state only its owner touches.
@Suite(.serialized) struct PipelineContractTests {
    let home: GPGHome
    let certs: SMIMECerts
    init() throws {
        home = try GPGHome.shared.get()
        certs = try SMIMECerts.shared.get()
    }

    /// A directory with sl.conf, a book `b` (the cards given) and `extra` lines.
    func setup(_ cards: [String], _ extra: String = "") throws -> URL {
        let dir = try Tools.scratch()
        try cards.joined().write(toFile: dir.appendingPathComponent("book.vcf").path, atomically: true, encoding: .utf8)
        try """
        book b = book.vcf
        default_book = b
        ask_sender = no
        hostname = mx.clinic.test
        pgp_homedir = \(home.path)
        smime_anchors = \(certs.path("ca"))
        smime_system_cas = no
        tls_probe = no
        \(extra)
        [account clinic]
        domains = clinic.test
        fallback = bounce

        """.write(toFile: dir.appendingPathComponent("sl.conf").path, atomically: true, encoding: .utf8)
        return dir
    }

    func conf(_ dir: URL) -> String { dir.appendingPathComponent("sl.conf").path }

    static func message(to: String, cc: String? = nil, subject: String = "Lab results", body: String = "The results are normal.\n") -> Bytes {
        bytes("From: Alice <alice@clinic.test>\nTo: \(to)\n" + (cc.map { "Cc: \($0)\n" } ?? "")
              + "Subject: \(subject)\nDate: Mon, 30 Nov 2026 09:00:00 +0000\nMessage-ID: <\(UUID().uuidString)@clinic.test>\n\n\(body)")
    }

    /// sl-classify then the named stages, each given the configuration; the last
    /// stage's run.
    func pipeline(_ dir: URL, _ classifyArgs: [String], _ input: Bytes, stages: [String]) throws -> ToolRun {
        var run = try Tools.run("sl-classify", ["--config", conf(dir)] + classifyArgs, stdin: input)
        try #require(run.status == 0, "\(run.stderr)")
        for s in stages {
            run = try Tools.run(s, ["--config", conf(dir)], stdin: run.stdout)
            try #require(run.status == 0, "\(s): \(run.stderr)")
        }
        return run
    }

    /// The single delivery report in `out`, for the sender, naming exactly `refused`.
    func expectReport(_ out: [Message], refused: String, status: String, saying words: String) throws {
        let reports = out.filter { $0.header["Content-Type"]?.contains("multipart/report") == true }
        try #require(reports.count == 1)
        let env = try #require(routing(reports[0]))
        #expect(env.sender.isEmpty && env.recipients.map(\.address) == ["alice@clinic.test"] && env.method == .insecure)
        let text = String(decoding: try reports[0].body.readAll(), as: UTF8.self)
        #expect(text.contains("Final-Recipient: rfc822; \(refused)") && text.contains("Status: \(status)"), "\(text)")
        #expect(text.components(separatedBy: "Final-Recipient:").count == 2)
        #expect(text.contains(words), "\(text)")
        #expect(!text.contains("The results are normal"), "a report never carries the content back")
    }

    // MARK: 2. one refused recipient does not hold the others

    @Test func aRevokedKeyIsReportedToTheSenderAndTheOthersGetTheirCopy() throws {
        let revoked = try home.revokedKey("revoked@example.org")
        let dir = try setup([Card.pgp("bob@example.org", try home.export("bob@example.org")),
                             Card.pgp("revoked@example.org", revoked.key)])
        let run = try pipeline(dir, ["-t"], Self.message(to: "bob@example.org, revoked@example.org"), stages: ["sl-encrypt-pgp"])
        #expect(run.stderr.contains("revoked@example.org left out") && run.stderr.contains("reported to alice@clinic.test"), "\(run.stderr)")
        let out = try Tools.messages(run.stdout)
        #expect(out.count == 2)
        let copy = try #require(out.first { routing($0)?.method == .pgp })
        #expect(routing(copy)?.recipients.map(\.address) == ["bob@example.org"])
        #expect(try pgpRecipientKeys(copy, home) == 1)
        try expectReport(out, refused: "revoked@example.org", status: "5.7.5", saying: "revoked")
        // Alone (-r) it is still the whole run that fails: there is no sender to tell.
        let alone = try Tools.run("sl-encrypt-pgp", ["--homedir", home.path, "-r", "revoked@example.org"], stdin: Self.message(to: "x@example.org"))
        #expect(alone.status == 69 && alone.stdout.isEmpty)
    }

    @Test func aCertificateThatFailsItsChecksIsReportedAndTheOthersGetTheirCopy() throws {
        let dir = try setup([Card.smime("rsa@example.org", try certs.der("rsa")),
                             Card.smime("expired@example.org", try certs.der("expired"))])
        let run = try pipeline(dir, ["-t"], Self.message(to: "rsa@example.org, expired@example.org"),
                               stages: ["sl-encrypt-pgp", "sl-encrypt-smime"])
        let out = try Tools.messages(run.stdout)
        #expect(out.count == 2)
        let copy = try #require(out.first { routing($0)?.method == .smime })
        #expect(routing(copy)?.recipients.map(\.address) == ["rsa@example.org"])
        let plain = try opensslDecrypt(try copy.bytes(), certs, as: "rsa")
        #expect(plain.status == 0 && plain.stdoutText.contains("The results are normal"), "\(plain.stderr)")
        try expectReport(out, refused: "expired@example.org", status: "5.7.5", saying: "expired")
    }

    @Test func whenEveryRecipientOfACopyIsRefusedOnlyTheReportIsLeft() throws {
        let revoked = try home.revokedKey("revoked@example.org")
        let dir = try setup([Card.pgp("revoked@example.org", revoked.key)])
        let run = try pipeline(dir, ["-t"], Self.message(to: "revoked@example.org"), stages: ["sl-encrypt-pgp", "sl-encrypt-smime", "sl-escrow-pack"])
        let out = try Tools.messages(run.stdout)
        #expect(out.count == 1)
        try expectReport(out, refused: "revoked@example.org", status: "5.7.5", saying: "revoked")
        // and sl-deliver takes the stream (dry run: who gets what)
        let plan = try Tools.run("sl-deliver", ["--config", conf(dir), "--dry-run"], stdin: run.stdout)
        #expect(plan.status == 0 && plan.stdoutText.contains("alice@clinic.test") && !plan.stdoutText.contains("revoked@"), "\(plan.stdoutText)")
    }

    // MARK: 3. no copy reveals a hidden recipient

    @Test func envelopeOnlyRecipientsGetCopiesOfTheirOwn() throws {
        let dir = try setup([Card.pgp("bob@example.org", try home.export("bob@example.org")),
                             Card.pgp("carol@example.net", try home.export("carol@example.net")),
                             Card.smime("rsa@example.org", try certs.der("rsa")),
                             Card.smime("ec@example.org", try certs.der("ec"))])
        // As Postfix passes them: envelope recipients, the Bcc field already gone.
        let input = Self.message(to: "bob@example.org, rsa@example.org")
        let run = try pipeline(dir, ["-f", "alice@clinic.test", "--", "bob@example.org", "carol@example.net", "rsa@example.org", "ec@example.org"],
                               input, stages: ["sl-encrypt-pgp", "sl-encrypt-smime"])
        let out = try Tools.messages(run.stdout)
        let pgp = out.filter { routing($0)?.method == .pgp }
        let smime = out.filter { routing($0)?.method == .smime }
        func copies(_ ms: [Message]) -> [String] {
            ms.map { m -> String in (routing(m)?.recipients.map(\.address) ?? []).joined(separator: ",") }.sorted()
        }
        #expect(copies(pgp) == ["bob@example.org", "carol@example.net"])
        #expect(copies(smime) == ["ec@example.org", "rsa@example.org"])
        // each PGP copy holds one key; each S/MIME copy one RecipientInfo
        for m in pgp { #expect(try pgpRecipientKeys(m, home) == 1) }
        for m in smime {
            let printed = try Tools.runCommand(["openssl", "cms", "-cmsout", "-print"], stdin: try m.bytes())
            let infos = printed.stdoutText.components(separatedBy: "d.ktri:").count + printed.stdoutText.components(separatedBy: "d.kari:").count - 2
            #expect(infos == 1, "\(printed.stdoutText.prefix(2000))")
        }
        // the visible recipients of a single copy may share it: To with To
        let shared = try pipeline(dir, ["-t"], Self.message(to: "bob@example.org, carol@example.net"), stages: ["sl-encrypt-pgp"])
        let sharedOut = try Tools.messages(shared.stdout)
        try #require(sharedOut.count == 1)
        #expect(try pgpRecipientKeys(sharedOut[0], home) == 2)
    }

    // MARK: 4. internal mail

    @Test func colleaguesAreDeliveredAsTheMTAWouldWithoutADecision() throws {
        let dir = try setup([Card.pgp("bob@example.org", try home.export("bob@example.org"))], "tls_static = clinic.test=none")
        let input = Self.message(to: "colleague@clinic.test, bob@example.org", subject: "+encrypt+ lab")
        let explain = try Tools.run("sl-classify", ["--config", conf(dir), "-t", "--json"], stdin: input)
        #expect(explain.status == 0, "\(explain.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(explain.stdout)) as? [[String: Any]])
        let colleague = try #require(rows.first { $0["recipient"] as? String == "colleague@clinic.test" })
        #expect(colleague["method"] as? String == "internal")
        #expect((colleague["reason"] as? String)?.contains("internal domain") == true)
        let routed = try Tools.messages(try Tools.run("sl-classify", ["--config", conf(dir), "-t"], stdin: input).stdout)
        let copy = try #require(routed.first { routing($0)?.method == .internal })
        #expect(routing(copy)?.tls == .opportunistic)
        let plan = try Tools.run("sl-deliver", ["--config", conf(dir), "--dry-run"], stdin: try Tools.run("sl-encrypt-pgp", ["--config", conf(dir)], stdin: try Tools.run("sl-classify", ["--config", conf(dir), "-t"], stdin: input).stdout).stdout)
        #expect(plan.status == 0 && plan.stdoutText.contains("colleague@clinic.test: MX of clinic.test"), "\(plan.stdoutText) \(plan.stderr)")
        // internal_domains set empty: colleagues are decided like anyone else
        let off = try setup([], "[user alice@clinic.test]\ninternal_domains =")
        let decided = try Tools.run("sl-classify", ["--config", conf(off), "-t", "--json"], stdin: Self.message(to: "colleague@clinic.test"))
        #expect(decided.status == 0 && decided.stdoutText.contains("\"method\" : \"bounce\""), "\(decided.stdoutText)")
    }

    // MARK: 5. an empty stream is nothing to do

    @Test(arguments: [["sl-classify", "-t"], ["sl-encrypt-pgp"], ["sl-encrypt-smime"], ["sl-escrow-pack"], ["sl-deliver"],
                      ["sl-deliver", "--dry-run"]])
    func emptyInputIsNothingToDoForEveryTool(_ argv: [String]) throws {
        let dir = try setup([], "state_directory = state")
        let run = try Tools.run(argv[0], ["--config", conf(dir)] + argv.dropFirst(), stdin: [])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.isEmpty && run.stderr.isEmpty, "\(run.stderr)")
    }

    /// The documented cron line, as cron runs it, with no receipts due.
    @Test func theReceiptsCronLineSucceedsWithNothingToSend() throws {
        let dir = try setup([], "state_directory = state")
        try MailUser.own(dir.path)
        let bin = try Installed.prefix.get() + "/bin"
        let run = try MailUser.run(["sh", "-c", "\(bin)/sl-escrow receipts --config \(conf(dir)) | \(bin)/sl-deliver --config \(conf(dir))"], stdin: [])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.isEmpty, "\(run.stderr)")
    }

    /// The documented TLS report cron line (sl-tls-probe(1)), as cron runs it: one
    /// day's sessions, noted by sl-deliver, become a report for the domain that asks.
    @Test func theTLSReportCronLineSendsYesterdaysReports() throws {
        let peers = try Peers.shared.get()
        let dir = try setup([], "state_directory = state\ntls_reporting = yes\ndns_server = \(peers.dnsServer)\nsmtp_port = \(peers.smtpPort)\ntls_ca_file = \(peers.caFile)\n")
        try FileManager.default.createDirectory(atPath: dir.path + "/state", withIntermediateDirectories: true)
        // yesterday's session to off.test, as sl-deliver notes it
        let yesterday = (floor(Date().timeIntervalSince1970 / 86_400) - 1) * 86_400 + 600
        try "{\"domain\":\"off.test\",\"mx\":\"mx.off.test\",\"address\":\"127.0.0.3\",\"policy_type\":\"no-policy-found\",\"result\":\"starttls-not-supported\",\"time\":\(yesterday)}\n"
            .write(toFile: dir.path + "/state/tls-sessions.jsonl", atomically: true, encoding: .utf8)
        try MailUser.own(dir.path)
        let bin = try Installed.prefix.get() + "/bin"
        // other tests report on off.test too: count what this run adds
        let before = peers.delivered(to: Peers.server("on"), containing: "TLS-Report-Domain: off.test", wait: 0).count
        let run = try MailUser.run(["sh", "-c", "\(bin)/sl-tls-probe --report --config \(conf(dir)) | \(bin)/sl-deliver --config \(conf(dir))"], stdin: [])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.isEmpty, "\(run.stderr)")
        #expect(peers.delivered(to: Peers.server("on"), containing: "TLS-Report-Domain: off.test", atLeast: before + 1).count == before + 1)
    }

    // MARK: 7. GnuPG home

    @Test func aMissingGnuPGHomeIsMadeOrNamed() throws {
        let scratch = try Tools.scratch().path
        let dir = try setup([Card.pgp("bob@example.org", try home.export("bob@example.org"))])
        let routed = try Tools.run("sl-classify", ["--config", conf(dir), "-t"], stdin: Self.message(to: "bob@example.org"))
        // A book's pinned key goes to librnp alone: no GnuPG home is used or made.
        let unused = scratch + "/unused-home"
        let bookOnly = try Tools.run("sl-encrypt-pgp", ["--config", conf(dir), "--homedir", unused], stdin: routed.stdout)
        #expect(bookOnly.status == 0, "\(bookOnly.stderr)")
        #expect(try Tools.messages(bookOnly.stdout).first?.header["Content-Type"]?.hasPrefix("multipart/encrypted") == true)
        #expect(!FileManager.default.fileExists(atPath: unused))
        // Hidden recipients need GnuPG, which gets the book's key: the home is made.
        let fresh = scratch + "/new-home"
        let made = try Tools.run("sl-encrypt-pgp", ["--config", conf(dir), "--homedir", fresh, "--hide-recipients"], stdin: routed.stdout)
        #expect(made.status == 0, "\(made.stderr)")
        var st = stat()
        #expect(stat(fresh, &st) == 0 && st.st_mode & 0o777 == 0o700)
        let out = try Tools.messages(made.stdout)
        #expect(out.count == 1 && out[0].header["Content-Type"]?.hasPrefix("multipart/encrypted") == true)
        let nowhere = try Tools.run("sl-encrypt-pgp", ["--config", conf(dir), "--homedir", scratch + "/no/such/home", "--hide-recipients"],
                                    stdin: routed.stdout)
        #expect(nowhere.status == 78 && nowhere.stdout.isEmpty)
        #expect(nowhere.stderr.contains("does not exist") && nowhere.stderr.split(separator: "\n").count == 1, "\(nowhere.stderr)")
    }

    // MARK: 8. state belongs to one user

    @Test func aRunAsAnotherUserThanTheStateOwnerIsRefusedBeforeItWrites() throws {
        let dir = try setup([], "state_directory = state\nqueue_directory = state/queue\nescrow_store = state/escrow")
        let state = dir.appendingPathComponent("state").path
        for sub in ["queue", "escrow"] {
            try FileManager.default.createDirectory(atPath: state + "/" + sub, withIntermediateDirectories: true)
        }
        try MailUser.own(state)
        let deliver = try Tools.run("sl-deliver", ["--config", conf(dir), "-f", "alice@clinic.test", "x@example.org"], stdin: Self.message(to: "x@example.org"))
        #expect(deliver.status == 75, "\(deliver.stderr)")
        #expect(deliver.stderr.contains("belongs to sl") && deliver.stderr.contains("runuser -u sl -- sl-deliver"), "\(deliver.stderr)")
        #expect(deliver.stderr.split(separator: "\n").count == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/queue").isEmpty)
        let escrow = bytes("X-SL-Version: 1\nX-SL-Envelope-From: alice@clinic.test\nX-SL-Envelope-To: zed@example.org; escrow=login\nX-SL-Method: escrow\nX-SL-TLS: opportunistic\nX-SL-Fallback: bounce\nFrom: alice@clinic.test\nTo: zed@example.org\nSubject: s\n\nbody\n")
        let pack = try Tools.run("sl-escrow-pack", ["--config", conf(dir)], stdin: escrow)
        #expect(pack.status == 75 && pack.stdout.isEmpty && pack.stderr.contains("run sl-escrow-pack as sl"), "\(pack.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/escrow").isEmpty)
        // A queue not made yet would be made by this run: the state directory's
        // owner decides.
        try FileManager.default.removeItem(atPath: state + "/queue")
        let fresh = try Tools.run("sl-deliver", ["--config", conf(dir), "-f", "alice@clinic.test", "x@example.org"], stdin: Self.message(to: "x@example.org"))
        #expect(fresh.status == 75 && fresh.stderr.contains("the state directory") && fresh.stderr.contains("belongs to sl"), "\(fresh.stderr)")
        #expect(!FileManager.default.fileExists(atPath: state + "/queue"))
    }

    @Test func aStateFileTheOwnerCannotReadIsAnErrorNotAFreshStart() throws {
        let dir = try setup([], "queue_directory = queue")
        let queue = dir.appendingPathComponent("queue").path
        try FileManager.default.createDirectory(atPath: queue, withIntermediateDirectories: true)
        let id = "1764493200000000-00000000abcd"
        try "X-SL-Version: 1\nX-SL-Envelope-From: alice@clinic.test\nX-SL-Envelope-To: x@down.test\nX-SL-Method: insecure\nX-SL-TLS: opportunistic\nX-SL-Fallback: bounce\nSubject: s\n\nb\n"
            .write(toFile: "\(queue)/\(id).eml", atomically: true, encoding: .utf8)
        try #"{"created":1764493200,"attempts":7,"nextAttempt":0,"reroute":[]}"#.write(toFile: "\(queue)/\(id).state", atomically: true, encoding: .utf8)
        try MailUser.own(dir.path)
        // what a run as root once left behind: a state file only root can read
        chown("\(queue)/\(id).state", 0, 0)
        chmod("\(queue)/\(id).state", 0o600)
        let run = try MailUser.run([try Installed.bin("sl-deliver"), "--config", conf(dir), "--run-queue"], stdin: [])
        #expect(run.status == 75, "\(run.stderr)")
        #expect(run.stderr.contains("\(id).state") && run.stderr.contains("another user"), "\(run.stderr)")
    }

    /// A queue that cannot be read is an error cron reports (75, one line), never
    /// an empty queue.
    @Test func anUnreadableQueueFailsTheQueueRunLoudly() throws {
        let dir = try setup([], "queue_directory = queue")
        let queue = dir.appendingPathComponent("queue").path
        try FileManager.default.createDirectory(atPath: queue, withIntermediateDirectories: true)
        try MailUser.own(dir.path)
        chmod(queue, 0o300)        // its owner may write, not list
        let run = try MailUser.run([try Installed.bin("sl-deliver"), "--config", conf(dir), "--run-queue"], stdin: [])
        #expect(run.status == 75, "\(run.stderr)")
        #expect(run.stderr.contains("cannot read the queue") && run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
    }

    // MARK: 9. a dry run changes nothing

    @Test func aDryRunOfTheWholePipelineChangesNothing() throws {
        let gnupg = try Tools.scratch().path
        let copyHome = try Tools.runCommand(["cp", "-a", home.path + "/.", gnupg], stdin: [])
        try #require(copyHome.status == 0)
        let revoked = try home.revokedKey("revoked@example.org")
        let dir = try setup([Card.pgp("bob@example.org", try home.export("bob@example.org")),
                             Card.pgp("revoked@example.org", revoked.key),
                             Card.question("erin@example.net", "Street?", "Elm")],
                            "pgp_homedir = \(gnupg)\nstate_directory = state\naudit_log = audit.jsonl\ntls_cache = cache.json")
        func snapshot() throws -> [String: Data] {
            var files: [String: Data] = [:]
            for root in [dir.path, gnupg] {
                let e = FileManager.default.enumerator(atPath: root)
                while let name = e?.nextObject() as? String {
                    let p = root + "/" + name
                    var isDir: ObjCBool = false
                    if FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue, !name.hasPrefix("S.") {
                        files[p] = FileManager.default.contents(atPath: p) ?? Data()
                    }
                }
            }
            return files
        }
        let before = try snapshot()
        let input = Self.message(to: "bob@example.org, revoked@example.org, erin@example.net, colleague@clinic.test")
        let run = try Tools.runCommand([try Installed.bin("sl-send"), "--config", conf(dir), "--dry-run", "-t"], stdin: input)
        #expect(run.status == 0, "\(run.stderr)")
        for who in ["bob@example.org", "erin@example.net", "colleague@clinic.test", "alice@clinic.test"] {
            #expect(run.stdoutText.contains("  \(who):"), "\(who) in \(run.stdoutText)")
        }
        #expect(!run.stdoutText.contains("revoked@example.org:"))
        let after = try snapshot()
        #expect(Set(after.keys) == Set(before.keys), "new or removed: \(Set(after.keys).symmetricDifference(before.keys))")
        for (p, data) in before { #expect(after[p] == data, "\(p) changed") }
    }

    // MARK: 1. the glue: sl-send

    /// As pipe(8) runs it: another user, PATH=/usr/bin:/bin, no HOME, umask 077,
    /// from `/`. It finds its tools and exits with the status of the stage that failed.
    @Test func slSendRunsAsPipeRunsItAndExitsWithTheFirstFailure() throws {
        let dir = try setup([], "state_directory = state")
        try MailUser.own(dir.path)
        let send = try Installed.bin("sl-send")
        // a malformed message: sl-classify's 65, not sl-deliver's 0 and not 75
        let malformed = bytes("From: alice@clinic.test\nTo: x@example.org\nSubject: a\u{0}b\n\nbody\n")
        let bad = try MailUser.run([send, "--config", conf(dir), "-f", "alice@clinic.test", "--", "x@example.org"], stdin: malformed)
        #expect(bad.status == 65, "\(bad.stderr)")
        #expect(bad.stderr.contains("sl-classify:") && !bad.stderr.contains("command not found"), "\(bad.stderr)")
        // a stage that fails for the whole stream (its configuration) decides the status
        let brokenConf = dir.appendingPathComponent("broken.conf").path
        try "smime_anchors = /no/such/ca.pem\nask_sender = no\n".write(toFile: brokenConf, atomically: true, encoding: .utf8)
        try MailUser.own(brokenConf)
        let broken = try MailUser.run([send, "--config", brokenConf, "-t"], stdin: Self.message(to: "x@example.org", subject: "+insecure+"))
        #expect(broken.status == 78, "\(broken.stderr)")
        #expect(broken.stderr.contains("sl-encrypt-smime"), "\(broken.stderr)")
        // a signed PGP copy with no GnuPG home to use (no HOME, no state directory):
        // the encryption stage's 78, not the 0 of the stages after it
        let noHome = dir.appendingPathComponent("nohome.conf").path
        try ("book b = \(dir.appendingPathComponent("book.vcf").path)\ndefault_book = b\nask_sender = no\nfallback = insecure\npgp_sign = yes\n")
            .write(toFile: noHome, atomically: true, encoding: .utf8)
        try Card.pgp("bob@example.org", try home.export("bob@example.org"))
            .write(toFile: dir.appendingPathComponent("book.vcf").path, atomically: true, encoding: .utf8)
        try MailUser.own(dir.path)
        let early = try MailUser.run([send, "--config", noHome, "-t"], stdin: Self.message(to: "bob@example.org"))
        #expect(early.status == 78 && early.stderr.contains("no GnuPG home"), "\(early.stderr)")
        // and a stream with nothing for PGP needs no home at all
        let plain = try MailUser.run([send, "--config", noHome, "--dry-run", "-t"], stdin: Self.message(to: "x@example.org"))
        #expect(plain.status == 0, "\(plain.stderr)")
        // usage
        #expect(try MailUser.run([send], stdin: []).status == 64)
        #expect(try MailUser.run([send, "-x"], stdin: []).status == 64)
        let help = try MailUser.run([send, "--help"], stdin: [])
        #expect(help.status == 0 && help.stdoutText.hasPrefix("usage: sl-send"))
        // alone, away from its tools: say so and keep the message (75)
        let lonely = try Tools.scratch().path
        let copy = try Tools.runCommand(["install", "-m", "0755", send, lonely + "/sl-send"], stdin: [])
        try #require(copy.status == 0)
        let alone = try MailUser.run([lonely + "/sl-send", "-t"], stdin: Self.message(to: "x@example.org"))
        #expect(alone.status == 75 && alone.stderr.contains("not installed beside"), "\(alone.stderr)")
        // through a symbolic link (as /usr/sbin/sendmail might be) it still finds them
        let link = try Tools.scratch().path + "/sendmail"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: send)
        let viaLink = try MailUser.run([link, "--config", conf(dir), "--dry-run", "-t"], stdin: Self.message(to: "colleague@clinic.test"))
        #expect(viaLink.status == 0 && viaLink.stdoutText.contains("colleague@clinic.test"), "\(viaLink.stderr)")
    }

    // MARK: 6. a re-route loop ends in a bounce

    @Test func aReroutedMessageKeepsItsArrivalTimeSoTheLifetimeEnds() throws {
        let peers = try Peers.shared.get()
        let bin = try Installed.prefix.get() + "/bin"
        let dir = try Tools.scratch()
        let conf = dir.appendingPathComponent("sl.conf").path
        // A policy that keeps choosing TLS-only for off.test, which has no TLS:
        // every new decision hands the message back to the queue.
        try (peers.configuration + """
        queue_directory = queue
        queue_lifetime = 0.00004
        tls_static = off.test=verified
        tls_probe = no
        ask_sender = no
        reroute_command = \(bin)/sl-send --config \(conf) -f "$SL_SENDER" -- "$@"
        [account clinic]
        domains = clinic.test
        tls_only = yes
        fallback = bounce

        """).write(toFile: conf, atomically: true, encoding: .utf8)
        let queue = dir.appendingPathComponent("queue").path
        let start = Date().timeIntervalSince1970.rounded(.down)
        let first = try Tools.runCommand([bin + "/sl-send", "--config", conf, "-t"], stdin: Self.message(to: "bob@off.test"))
        #expect(first.status == 0, "\(first.stderr)")
        // queued once, by the sl-deliver inside the new decision, with the first
        // arrival time and the attempts so far
        let states = try FileManager.default.contentsOfDirectory(atPath: queue).filter { $0.hasSuffix(".state") }
        try #require(states.count == 1, "\(states) \(first.stderr)")
        let state = try #require(try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: queue + "/" + states[0]))) as? [String: Any])
        #expect((state["created"] as? Double ?? 0) <= start + 1 && (state["created"] as? Double ?? 0) >= start - 1, "\(state)")
        #expect(state["attempts"] as? Int == 2, "\(state)")
        // after the lifetime: a bounce with a report, not another hand-over
        usleep(3_600_000)
        let again = try Tools.run("sl-deliver", ["--config", conf, "--run-queue", "--force"], stdin: [])
        #expect(again.status == 0, "\(again.stderr)")
        let audit = try String(contentsOfFile: dir.appendingPathComponent("audit.jsonl").path, encoding: .utf8)
        let lastRun = audit.split(separator: "\n").suffix(3).joined(separator: "\n")
        #expect(lastRun.contains("\"outcome\":\"failed\"") && lastRun.contains("5.7.10"), "\(lastRun)")
        let left = try FileManager.default.contentsOfDirectory(atPath: queue).filter { $0.hasSuffix(".eml") }
        let texts = try left.map { try String(contentsOfFile: queue + "/" + $0, encoding: .utf8) }
        #expect(texts.allSatisfy { $0.contains("multipart/report") }, "only the report to the sender may wait: \(texts)")
    }
}
