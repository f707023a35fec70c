import Foundation
import Testing
import SLMessage
import SLTestPeers

/// Where a tool test's escrow store lives: the tests that use a store run on both.
enum StoreBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// escrow_store = a directory (escrow.sqlite and content files).
    case sqlite
    /// escrow_store = postgresql://… : a database of its own in the test process's
    /// cluster (PostgresPeer), its schema made with `sl-escrow migrate`.
    case postgresql

    var testDescription: String { rawValue }
}

/// sl-escrow-pack and sl-escrow, as built: seal, notify, open, refuse, retract,
/// expire, lock out, account login, receipts; the store never holds what it seals;
/// two packers at once and kill -9 leave it sound.
@Suite struct EscrowToolTests {
    /// A scratch installation: store, state directory, a book with a question for
    /// carol, a default question for the clinic, the cheapest KDF OWASP allows (the
    /// tests derive many keys).
    struct Setup {
        let dir: URL
        let backend: StoreBackend
        /// The database's URI (postgresql), nil for a directory store.
        let uri: String?
        var config: String { dir.appendingPathComponent("sl.conf").path }
        var store: String { dir.appendingPathComponent("store").path }
        var state: String { dir.appendingPathComponent("state").path }

        init(_ extra: String = "", backend: StoreBackend = .sqlite) throws {
            dir = try Tools.scratch()
            self.backend = backend
            uri = backend == .postgresql ? try PostgresPeer.shared.get().newDatabase() : nil
            try """
            BEGIN:VCARD
            VERSION:4.0
            FN:Carol
            EMAIL:carol@example.org
            X-SL-ESCROW-QUESTION:Name of your first pet?
            X-SL-ESCROW-ANSWER:  Fluffy  The Cat
            END:VCARD

            """.write(toFile: dir.appendingPathComponent("book.vcf").path, atomically: true, encoding: .utf8)
            try """
            hostname = mx.clinic.test
            state_directory = state
            escrow_store = \(uri ?? "store")
            escrow_url = https://portal.clinic.test/escrow
            escrow_kdf_passes = 2
            escrow_kdf_memory = 19
            tls_probe = no
            book main = book.vcf
            \(extra)

            [domain clinic.test]
            escrow_question = Your patient number?
            escrow_answer = PN-4711

            """.write(toFile: config, atomically: true, encoding: .utf8)
            if uri != nil {
                let migrate = try run("sl-escrow", ["migrate"])
                guard migrate.status == 0 else { throw PeerError("sl-escrow migrate: \(migrate.stderr)") }
            }
        }

        /// sl-escrow takes its options after the subcommand.
        func run(_ tool: String, _ args: [String], _ input: Bytes = []) throws -> ToolRun {
            try Tools.run(tool, tool == "sl-escrow" ? args + ["--config", config] : ["--config", config] + args, stdin: input)
        }

        func pack(_ input: Bytes) throws -> ToolRun { try run("sl-escrow-pack", [], input) }

        func file(_ name: String, _ text: String) throws -> String {
            let p = dir.appendingPathComponent(name).path
            try text.write(toFile: p, atomically: true, encoding: .utf8)
            return p
        }

        /// Opens with the link and answer given as files.
        func open(link: String, answer: String? = nil, password: String? = nil) throws -> ToolRun {
            var args = ["open", "--link-file", try file("link", link)]
            if let answer { args += ["--answer-file", try file("answer", answer + "\n")] }
            if let password { args += ["--password-file", try file("password", password + "\n")] }
            return try run("sl-escrow", args)
        }

        /// Every byte the store holds: its files, or (PostgreSQL) the database as
        /// pg_dump writes it, and the bytea values in it decoded from hex.
        func storeBytes() throws -> [(String, Bytes)] {
            if let uri {
                let dump = try PostgresPeer.shared.get().dump(PostgresPeer.database(of: uri))
                var decoded = Bytes()
                for run in dump.split(whereSeparator: { !$0.isHexDigit }) where run.count >= 16 && run.count % 2 == 0 {
                    var i = run.startIndex
                    while i < run.endIndex {
                        let j = run.index(i, offsetBy: 2)
                        decoded.append(UInt8(run[i..<j], radix: 16)!)
                        i = j
                    }
                }
                return [("pg_dump", bytes(dump)), ("pg_dump bytea", decoded)]
            }
            var out: [(String, Bytes)] = []
            let e = FileManager.default.enumerator(atPath: store)
            while let name = e?.nextObject() as? String {
                let p = store + "/" + name
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue {
                    out.append((name, Array(try Data(contentsOf: URL(fileURLWithPath: p)))))
                }
            }
            return out
        }

        /// How many records have sealed content.
        func sealedCount() throws -> Int {
            if uri != nil { return Int(try sql("SELECT count(DISTINCT id) FROM sl_escrow.content")) ?? -1 }
            return try storeBytes().filter { $0.0.hasSuffix(".sealed") }.count
        }

        /// A query's rows, columns joined by |, read past sl (sqlite3 through Python,
        /// or psql). Table names without the schema: sl_escrow is on the path.
        func sql(_ query: String) throws -> String {
            if let uri {
                let peer = try PostgresPeer.shared.get()
                return try peer.psql(PostgresPeer.database(of: uri), "SET search_path = sl_escrow; " + query)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let r = try Tools.runCommand(["python3", "-c", """
                import sqlite3, sys
                for row in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]):
                    print("|".join(str(c) for c in row))
                """, store + "/escrow.sqlite", query], stdin: [])
            return r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    static let attachment = Array((0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) })

    /// A message as sl-classify routes it to escrow: carol by her book's question,
    /// dan by the clinic's default question.
    static func routed(subject: String = "Lab results for Dan Example", recipients: [(String, String)] = [
        ("carol@example.org", "escrow=question; qa=book:main"), ("dan@example.net", "escrow=question; qa=default:domain"),
    ], body: String = "Grüße: the results are attached.\n") -> Bytes {
        let to = recipients.map { "X-SL-Envelope-To: \($0.0); \($0.1)\n" }.joined()
        let b64 = String(decoding: TransferEncoding.encodeBase64(attachment), as: UTF8.self)
        return bytes("""
        X-SL-Version: 1
        X-SL-Envelope-From: alice@clinic.test
        \(to)X-SL-Method: escrow
        X-SL-TLS: opportunistic
        X-SL-Fallback: bounce
        From: Alice <alice@clinic.test>
        To: \(recipients.map(\.0).joined(separator: ", "))
        Subject: \(subject)
        Date: Mon, 30 Nov 2026 09:00:00 +0000
        Message-ID: <lab-1@clinic.test>
        MIME-Version: 1.0
        Content-Type: multipart/mixed; boundary="b1"

        --b1
        Content-Type: text/plain; charset=utf-8
        Content-Transfer-Encoding: 8bit

        \(body)
        --b1
        Content-Type: application/octet-stream; name="results.bin"
        Content-Transfer-Encoding: base64

        \(b64)
        --b1--

        """)
    }

    /// The message as the recipient must get it back: no routing fields.
    static func original(_ input: Bytes) throws -> Bytes {
        var m = try Message(bytes: input)
        m.header.removeEnvelopeFields()
        return try m.bytes()
    }

    /// The link in a notice's text part.
    static func link(in notice: Message) throws -> String {
        let text = String(decoding: try notice.body.readAll(), as: UTF8.self)
        let line = try #require(text.split(whereSeparator: \.isNewline).first { $0.contains("https://portal.clinic.test/escrow/") })
        return String(line.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    static func notices(_ run: ToolRun) throws -> [String: Message] {
        var out: [String: Message] = [:]
        for m in try Tools.messages(run.stdout) { out[m.header["To"] ?? ""] = m }
        return out
    }

    @Test(arguments: StoreBackend.allCases) func packThenOpenGivesTheOriginalBackByteForByte(_ backend: StoreBackend) throws {
        let s = try Setup(backend: backend)
        let input = Self.routed()
        let packed = try s.pack(input)
        #expect(packed.status == 0, "\(packed.stderr)")
        let notices = try Self.notices(packed)
        #expect(notices.keys.sorted() == ["carol@example.org", "dan@example.net"])
        for (to, notice) in notices {
            let header = String(decoding: notice.header.bytes, as: UTF8.self)
            // A notice: routed for opportunistic delivery as a notice, to that recipient only.
            #expect(header.contains("X-SL-Envelope-To: \(to); escrow=notice"))
            #expect(header.contains("X-SL-TLS: opportunistic"))
            #expect(header.contains("multipart/alternative"))
            // It names neither the original subject nor the recipient in the link.
            #expect(!header.contains("Lab results"))
            let link = try Self.link(in: notice)
            #expect(!link.contains("@"))
            let text = String(decoding: try notice.body.readAll(), as: UTF8.self)
            #expect(text.contains(to == "carol@example.org" ? "Name of your first pet?" : "Your patient number?"))
            #expect(!text.contains("PN-4711") && !text.lowercased().contains("fluffy"))
            #expect(text.contains("text/html"))
        }
        // Each recipient opens with their own link and answer (normalised: case and spaces).
        let carol = try s.open(link: try Self.link(in: notices["carol@example.org"]!), answer: "fluffy the cat")
        #expect(carol.status == 0, "\(carol.stderr)")
        #expect(carol.stdout == (try Self.original(input)))
        let dan = try s.open(link: try Self.link(in: notices["dan@example.net"]!), answer: "PN-4711")
        #expect(dan.status == 0, "\(dan.stderr)")
        #expect(dan.stdout == (try Self.original(input)))
        // One recipient's link does not open with the other's answer.
        let crossed = try s.open(link: try Self.link(in: notices["dan@example.net"]!), answer: "Fluffy the cat")
        #expect(crossed.status == 77 && crossed.stdout.isEmpty)
        // Every other message passes through byte for byte.
        let plain = bytes("From: a@clinic.test\nTo: b@example.org\nSubject: not escrow\n\nbody\n")
        let through = try s.pack(plain)
        #expect(through.status == 0 && through.stdout == plain)
    }

    @Test(arguments: StoreBackend.allCases) func theStoreHoldsNoneOfWhatItSeals(_ backend: StoreBackend) throws {
        let s = try Setup(backend: backend)
        let packed = try s.pack(Self.routed(subject: "Subject-Marker-7731", body: "Body-Marker-5521 Grüße"))
        #expect(packed.status == 0, "\(packed.stderr)")
        let b64 = Array(TransferEncoding.encodeBase64(Self.attachment).prefix(60))
        let needles: [(String, Bytes)] = [
            ("subject", bytes("Subject-Marker-7731")), ("body", bytes("Body-Marker-5521")), ("attachment", Array(Self.attachment[100..<160])),
            ("attachment (base64)", b64), ("book answer", bytes("Fluffy")), ("normalised answer", bytes("fluffy the cat")),
            ("default answer", bytes("PN-4711")), ("normalised default answer", bytes("pn-4711")),
        ]
        let files = try s.storeBytes()
        #expect(files.count >= 2)
        for (name, content) in files {
            for (what, needle) in needles {
                #expect(!Self.contains(content, needle), "the store file \(name) holds the \(what)")
            }
        }
    }

    static func contains(_ haystack: Bytes, _ needle: Bytes) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        return (0...(haystack.count - needle.count)).contains { i in haystack[i] == needle[0] && Array(haystack[i..<i + needle.count]) == needle }
    }

    @Test(arguments: StoreBackend.allCases) func wrongAnswersCountAndLockTheRecipientOut(_ backend: StoreBackend) throws {
        let s = try Setup("escrow_max_attempts = 3", backend: backend)
        let notices = try Self.notices(try s.pack(Self.routed()))
        let link = try Self.link(in: notices["carol@example.org"]!)
        let first = try s.open(link: link, answer: "Rex")
        #expect(first.status == 77 && first.stdout.isEmpty)
        #expect(first.stderr.contains("wrong answer") && first.stderr.contains("2"), "\(first.stderr)")
        _ = try s.open(link: link, answer: "Rex")
        let third = try s.open(link: link, answer: "Rex")
        #expect(third.status == 77)
        let right = try s.open(link: link, answer: "Fluffy the cat")
        #expect(right.status == 77 && right.stdout.isEmpty)
        #expect(right.stderr.contains("locked"), "\(right.stderr)")
        // Dan is not locked out by Carol's attempts.
        let dan = try s.open(link: try Self.link(in: notices["dan@example.net"]!), answer: "pn-4711")
        #expect(dan.status == 0, "\(dan.stderr)")
        let id = String(link.split(separator: "/").dropLast().last!)
        let status = try s.run("sl-escrow", ["status", "--json", id])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout)) as? [String: Any])
        let recipients = try #require(json["recipients"] as? [[String: Any]])
        let carol = try #require(recipients.first { $0["address"] as? String == "carol@example.org" })
        #expect(carol["failedAttempts"] as? Int == 3 && carol["locked"] as? Bool == true)
        let danStatus = try #require(recipients.first { $0["address"] as? String == "dan@example.net" })
        #expect(danStatus["firstOpen"] != nil && danStatus["locked"] as? Bool == false)
    }

    @Test(arguments: StoreBackend.allCases) func aWrongLinkSecretDoesNotOpen(_ backend: StoreBackend) throws {
        let s = try Setup(backend: backend)
        let notices = try Self.notices(try s.pack(Self.routed()))
        let link = try Self.link(in: notices["carol@example.org"]!)
        var secret = Array(link.split(separator: "#").last!)
        secret[3] = secret[3] == "A" ? "B" : "A"
        let forged = String(link.split(separator: "#").first!) + "#" + String(secret)
        let r = try s.open(link: forged, answer: "Fluffy the cat")
        #expect(r.status == 77 && r.stdout.isEmpty)
        #expect(r.stderr.contains("link"), "\(r.stderr)")
        // The link is judged before any answer is asked for (here there is no
        // terminal to ask on, which would be exit 64).
        let unasked = try s.open(link: forged)
        #expect(unasked.status == 77 && unasked.stderr.contains("link"), "\(unasked.stderr)")
        let garbage = try s.open(link: "https://portal.clinic.test/escrow/nothing", answer: "x")
        #expect(garbage.status == 64, "\(garbage.stderr)")
    }

    @Test(arguments: StoreBackend.allCases) func retractedAndExpiredMessagesSayWhy(_ backend: StoreBackend) throws {
        let s = try Setup("escrow_expiry = 0.00002", backend: backend)      // 1.7 seconds
        let notices = try Self.notices(try s.pack(Self.routed()))
        let carolLink = try Self.link(in: notices["carol@example.org"]!)
        let id = String(carolLink.split(separator: "/").dropLast().last!)
        Thread.sleep(forTimeInterval: 2.5)
        let expired = try s.open(link: carolLink, answer: "Fluffy the cat")
        #expect(expired.status == 77 && expired.stderr.contains("expired"), "\(expired.stderr)")
        let unasked = try s.open(link: carolLink)
        #expect(unasked.status == 77 && unasked.stderr.contains("expired"), "\(unasked.stderr)")
        let purge = try s.run("sl-escrow", ["purge"])
        #expect(purge.status == 0, "\(purge.stderr)")
        #expect(try s.sealedCount() == 0)
        #expect(try s.open(link: carolLink, answer: "Fluffy the cat").stderr.contains("expired"))

        let t = try Setup(backend: backend)
        let fresh = try Self.notices(try t.pack(Self.routed()))
        let link = try Self.link(in: fresh["dan@example.net"]!)
        let freshID = String(link.split(separator: "/").dropLast().last!)
        #expect(freshID != id)
        let retract = try t.run("sl-escrow", ["retract", freshID])
        #expect(retract.status == 0, "\(retract.stderr)")
        let r = try t.open(link: link, answer: "PN-4711")
        #expect(r.status == 77 && r.stdout.isEmpty)
        #expect(r.stderr.contains("retracted by the sender"), "\(r.stderr)")
        let list = try t.run("sl-escrow", ["list"])
        #expect(list.stdoutText.contains(freshID) && list.stdoutText.contains("retracted"))
        #expect(try t.run("sl-escrow", ["retract", "0123456789abcdef0123456789abcdef"]).status == 66)
    }

    @Test(arguments: StoreBackend.allCases) func loginRecipientsOpenWithTheirAccountPassword(_ backend: StoreBackend) throws {
        let s = try Setup(backend: backend)
        // Without an account Erin still gets her notice: its link lets her choose a
        // password (sl-portal), which makes the account. Carol, in the same copy, too.
        let noAccount = try s.pack(Self.routed(recipients: [("erin@example.com", "escrow=login"),
                                                            ("carol@example.org", "escrow=question; qa=book:main")]))
        #expect(noAccount.status == 0, "\(noAccount.stderr)")
        let notices = try Self.notices(noAccount)
        #expect(notices.keys.sorted() == ["carol@example.org", "erin@example.com"])
        let erinsNotice = String(decoding: try #require(notices["erin@example.com"]).bytes(), as: UTF8.self)
        #expect(erinsNotice.contains("choose a password"), "\(erinsNotice)")
        let early = try Self.link(in: try #require(notices["erin@example.com"]))
        let notYet = try s.open(link: early, password: "correct horse battery")
        #expect(notYet.status == 67 && notYet.stdout.isEmpty && notYet.stderr.contains("no escrow account yet"), "\(notYet.stderr)")
        let add = try s.run("sl-escrow", ["account", "add", "--password-file", try s.file("pw", "correct horse battery\n"), "erin@example.com"])
        #expect(add.status == 0, "\(add.stderr)")
        #expect(try s.run("sl-escrow", ["account", "list"]).stdoutText.contains("erin@example.com"))
        // The message sealed before the account opens with its link and the password.
        let earlyOpen = try s.open(link: early, password: "correct horse battery")
        #expect(earlyOpen.status == 0, "\(earlyOpen.stderr)")
        let input = Self.routed(recipients: [("erin@example.com", "escrow=login")])
        let packed = try s.pack(input)
        #expect(packed.status == 0, "\(packed.stderr)")
        let later = try #require(try Self.notices(packed)["erin@example.com"])
        #expect(!String(decoding: try later.bytes(), as: UTF8.self).contains("choose a password"))
        let link = try Self.link(in: later)
        let wrong = try s.open(link: link, password: "correct horse")
        #expect(wrong.status == 77 && wrong.stdout.isEmpty)
        let right = try s.open(link: link, password: "correct horse battery")
        #expect(right.status == 0, "\(right.stderr)")
        #expect(right.stdout == (try Self.original(input)))
    }

    @Test(arguments: StoreBackend.allCases) func readReceiptsGoToTheSenderOnce(_ backend: StoreBackend) throws {
        let s = try Setup(backend: backend)
        let notices = try Self.notices(try s.pack(Self.routed()))
        #expect(try s.run("sl-escrow", ["receipts"]).stdout.isEmpty)
        #expect(try s.open(link: try Self.link(in: notices["dan@example.net"]!), answer: "PN-4711").status == 0)
        let receipts = try s.run("sl-escrow", ["receipts"])
        #expect(receipts.status == 0, "\(receipts.stderr)")
        let messages = try Tools.messages(receipts.stdout)
        #expect(messages.count == 1)
        let header = String(decoding: messages[0].header.bytes, as: UTF8.self)
        #expect(header.contains("X-SL-Envelope-To: alice@clinic.test") && header.contains("To: alice@clinic.test"))
        let text = String(decoding: try messages[0].body.readAll(), as: UTF8.self)
        #expect(text.contains("dan@example.net"))
        // It names the message by its Message-ID and date, threads with it, and never
        // shows the subject (the store does not hold it).
        #expect(text.contains("<lab-1@clinic.test>") && messages[0].header["In-Reply-To"] == "<lab-1@clinic.test>", "\(text)")
        #expect(!text.contains("Lab results") && !header.contains("Lab results"))
        #expect(try s.run("sl-escrow", ["receipts"]).stdout.isEmpty)
        // sl-deliver takes both the receipts and the notices (it refuses unsealed escrow).
        let dry = try s.run("sl-deliver", ["--dry-run"], receipts.stdout)
        #expect(dry.status == 0, "\(dry.stderr)")
        let notice = try s.run("sl-deliver", ["--dry-run"], try s.pack(Self.routed()).stdout)
        #expect(notice.status == 0 && notice.stdoutText.contains("carol@example.org"), "\(notice.stderr)")
    }

    @Test(arguments: StoreBackend.allCases) func theSendersTypedAnswerIsUsedOnceAndDeleted(_ backend: StoreBackend) throws {
        let s = try Setup(backend: backend)
        let pending = s.state + "/pending"
        try FileManager.default.createDirectory(atPath: pending, withIntermediateDirectories: true)
        let token = "0123456789abcdef0123456789abcdef"
        try #"{"answer":"blue","question":"Favourite colour?","recipient":"gus@example.org"}"#
            .write(toFile: pending + "/" + token, atomically: true, encoding: .utf8)
        let packed = try s.pack(Self.routed(recipients: [("gus@example.org", "escrow=question; qa=pending:\(token)")]))
        #expect(packed.status == 0, "\(packed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: pending + "/" + token))
        let link = try Self.link(in: try #require(try Self.notices(packed)["gus@example.org"]))
        #expect(try s.open(link: link, answer: "BLUE").status == 0)
        // A token that is a path, or one that is gone, is refused and nothing is written.
        let traversal = try s.pack(Self.routed(recipients: [("gus@example.org", "escrow=question; qa=pending:../../etc/passwd")]))
        #expect(traversal.status == 65 && traversal.stdout.isEmpty)
        let gone = try s.pack(Self.routed(recipients: [("gus@example.org", "escrow=question; qa=pending:\(token)")]))
        #expect(gone.status == 0, "\(gone.stderr)")
        let report = try Tools.messages(gone.stdout)
        try #require(report.count == 1)
        try Self.expectReport(report[0], for: "gus@example.org", saying: "the answer the sender gave is gone")
    }

    /// A report from a stage to the sender (the null sender's routing to
    /// alice@clinic.test), RFC 3464, for exactly `recipient`.
    static func expectReport(_ m: Message, for recipient: String, saying words: String) throws {
        let env = try #require(try Envelope.read(from: m.header))
        #expect(env.sender == "" && env.recipients.map(\.address) == ["alice@clinic.test"] && env.method == .insecure)
        #expect(m.header["Content-Type"]?.contains("multipart/report") == true)
        let text = String(decoding: try m.body.readAll(), as: UTF8.self)
        #expect(text.contains("Final-Recipient: rfc822; \(recipient)"))
        #expect(text.components(separatedBy: "Final-Recipient:").count == 2, "one recipient reported")
        #expect(text.contains(words), "\(text)")
        // the report never carries the protected content back
        #expect(!text.contains("the results are attached"))
    }

    @Test(arguments: StoreBackend.allCases) func aBookEntryThatIsGoneIsReportedAndTheOthersArePacked(_ backend: StoreBackend) throws {
        let s = try Setup(backend: backend)
        let r = try s.pack(Self.routed(recipients: [("zed@example.org", "escrow=question; qa=book:main"),
                                                    ("carol@example.org", "escrow=question; qa=book:main")]))
        #expect(r.status == 0, "\(r.stderr)")
        let out = try Self.notices(r)
        #expect(out.keys.sorted() == ["alice@clinic.test", "carol@example.org"])
        try Self.expectReport(try #require(out["alice@clinic.test"]), for: "zed@example.org", saying: "no longer has an escrow question")
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("zed@example.org left out"), "\(r.stderr)")
    }

    @Test(arguments: [
        ("carol@example.org", "escrow=question", 65, "qa"),
        ("zed@example.org", "escrow=question; qa=book:nosuch", 78, "not configured"),
        ("zed@example.org", "escrow=carrier-pigeon", 65, "escrow=question or escrow=login"),
    ])
    func badRoutingIsRefusedWithNothingWritten(address: String, parameters: String, status: Int32, words: String) throws {
        let s = try Setup()
        let r = try s.pack(Self.routed(recipients: [(address, parameters)]))
        #expect(r.status == status, "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.contains(words), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    /// A store that cannot be made is a temporary failure (the caller keeps the
    /// message), not a configuration error that Postfix would bounce.
    @Test func anUnusableStoreDefersTheMessage() throws {
        let s = try Setup()
        try "not a directory".write(toFile: s.store, atomically: true, encoding: .utf8)
        let r = try s.pack(Self.routed())
        #expect(r.status == 75 && r.stdout.isEmpty, "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    @Test(arguments: StoreBackend.allCases) func twoPackersAtOnceLeaveASoundStore(_ backend: StoreBackend) throws {
        let s = try Setup(backend: backend)
        let stream = (0..<15).map { i in [UInt8]("From alice@clinic.test Mon Nov 30 09:00:00 2026\n".utf8) + Self.routed(subject: "n \(i)") + [0x0A] }.joined()
        let input = Array(stream)
        final class Runs: @unchecked Sendable { var all: [ToolRun] = []; let lock = NSLock() }
        let collected = Runs()
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            let r = try? s.pack(input)
            collected.lock.lock(); if let r { collected.all.append(r) }; collected.lock.unlock()
        }
        let runs = collected.all
        #expect(runs.count == 2 && runs.allSatisfy { $0.status == 0 }, "\(runs.map(\.stderr))")
        #expect(runs.allSatisfy { (try? Tools.messages($0.stdout).count) == 30 })
        let verify = try s.run("sl-escrow", ["verify"])
        #expect(verify.status == 0, "\(verify.stderr)")
        let list = try s.run("sl-escrow", ["list", "--json"])
        #expect(list.stdoutText.split(separator: "\n").count == 30)
        // Argon2id ran once per recipient per run, though each run packs on several
        // workers: two runs, two recipients, four salts for 60 recipient records.
        #expect(try s.sql("select count(distinct salt), count(*) from recipients") == "4|60")
    }

    @Test(arguments: StoreBackend.allCases) func killedWhilePackingTheStoreStaysSound(_ backend: StoreBackend) throws {
        let s = try Setup(backend: backend)
        let stream = Array((0..<40).map { i in [UInt8]("From alice@clinic.test Mon Nov 30 09:00:00 2026\n".utf8) + Self.routed(subject: "n \(i)") + [0x0A] }.joined())
        let input = s.dir.appendingPathComponent("stream.mbox")
        try Data(stream).write(to: input)
        let binary = Tools.binDirectory.appendingPathComponent("sl-escrow-pack").path
        for round in 0..<8 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = ["--config", s.config]
            p.standardInput = try FileHandle(forReadingFrom: input)
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            Thread.sleep(forTimeInterval: 0.05 + Double(round) * 0.04)
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        let verify = try s.run("sl-escrow", ["verify"])
        #expect(verify.status == 0, "\(verify.stderr)")
        // Whatever a killed packer left is whole: every recorded message opens.
        let list = try s.run("sl-escrow", ["list", "--json"])
        for line in list.stdoutText.split(separator: "\n") {
            let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect((json["recipients"] as? [Any])?.count == 2)
        }
        // And a clean run after the kills packs everything.
        let clean = try s.pack(stream)
        let cleanCount = try Tools.messages(clean.stdout).count
        #expect(clean.status == 0 && cleanCount == 80, "\(clean.stderr)")
    }

    /// A 100 MB message to dan by escrow, 8-bit text lines.
    static func hundredMegabytes() -> Bytes {
        var input = bytes("""
        X-SL-Version: 1
        X-SL-Envelope-From: alice@clinic.test
        X-SL-Envelope-To: dan@example.net; escrow=question; qa=default:domain
        X-SL-Method: escrow
        X-SL-TLS: opportunistic
        X-SL-Fallback: bounce
        From: Alice <alice@clinic.test>
        To: dan@example.net
        Subject: scans

        """)
        let line = Array(("0123456789abcdefghijklmnopqrstuvwxyz Grüße, 8-bit: \u{e9}\u{e8}\u{ea}" + String(repeating: "=", count: 20) + "\n").utf8)
        input.reserveCapacity(100 << 20 + 1000)
        while input.count < 100 << 20 { input += line }
        return input
    }

    @Test(arguments: StoreBackend.allCases) func aHundredMegabyteMessageRoundTripsInBoundedMemory(_ backend: StoreBackend) throws {
        let s = try Setup(backend: backend)
        let input = Self.hundredMegabytes()
        let file = s.dir.appendingPathComponent("big.eml")
        try Data(input).write(to: file)
        let packed = try Tools.run("sl-escrow-pack", ["--config", s.config], stdin: Array(try Data(contentsOf: file)),
                                   wrapper: ["/usr/bin/time", "-f", "%M", "-o", s.dir.appendingPathComponent("rss").path])
        #expect(packed.status == 0, "\(packed.stderr)")
        let rss = Int(try String(contentsOf: s.dir.appendingPathComponent("rss"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(rss > 0 && (Tools.underSanitizer || rss < 96 << 10), "sl-escrow-pack peaked at \(rss) KiB for a 100 MB message")
        let link = try Self.link(in: try #require(try Self.notices(packed)["dan@example.net"]))
        let opened = try s.open(link: link, answer: "PN-4711")
        #expect(opened.status == 0, "\(opened.stderr)")
        #expect(opened.stdout.count > (100 << 20) - 1024)
        #expect(opened.stdout == (try Self.original(input)))
    }

    @Test(arguments: StoreBackend.allCases) func aMessageMayAskForAnotherExpiryWithinLimits(_ backend: StoreBackend) throws {
        let s = try Setup("escrow_expiry_max = 10", backend: backend)
        func expiry(_ field: String) throws -> Double {
            var input = Self.routed(recipients: [("dan@example.net", "escrow=question; qa=default:domain")])
            input = bytes("Expires: \(field)\n") + input
            let packed = try s.pack(input)
            #expect(packed.status == 0, "\(packed.stderr)")
            let link = try Self.link(in: try #require(try Self.notices(packed)["dan@example.net"]))
            let id = String(link.split(separator: "/").dropLast().last!)
            let status = try s.run("sl-escrow", ["status", "--json", id])
            let json = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout)) as? [String: Any])
            let f = ISO8601DateFormatter()
            let text = try #require(json["expires"] as? String)
            return try #require(f.date(from: text)).timeIntervalSinceNow
        }
        let asked = try expiry(DeliveryReport.rfc5322Date(Date().addingTimeInterval(3 * 86_400)))
        #expect(abs(asked - 3 * 86_400) < 120)
        let tooLong = try expiry("Mon, 1 Jan 2035 00:00:00 +0000")
        #expect(abs(tooLong - 10 * 86_400) < 120)
        let past = try expiry("Mon, 1 Jan 2001 00:00:00 +0000")
        #expect(abs(past - 3600) < 120)
        let unreadable = try expiry("next Tuesday")
        #expect(abs(unreadable - 10 * 86_400) < 120)      // escrow_expiry (30) capped by the maximum (10)
    }
}

extension EscrowToolTests {
    /// Step 4 of the decision: a recipient with an account in the store is sent by
    /// escrow with login, with no list to keep by hand.
    @Test(arguments: StoreBackend.allCases) func slClassifyFindsLoginAccountsInTheStore(_ backend: StoreBackend) throws {
        let s = try Setup("fallback = bounce", backend: backend)
        let message = bytes("From: Bob <bob@other.test>\nTo: erin@example.com\nSubject: hi\n\nhello\n")
        let before = try s.run("sl-classify", ["-t", "--explain"], message)
        #expect(before.status == 0, "\(before.stderr)")
        #expect(before.stdoutText.contains(" bounce ") && before.stdoutText.contains("step 7"), "\(before.stdoutText)")
        let add = try s.run("sl-escrow", ["account", "add", "--password-file", try s.file("pw", "a long password\n"), "Erin@Example.com"])
        #expect(add.status == 0, "\(add.stderr)")
        let after = try s.run("sl-classify", ["-t", "--explain"], message)
        #expect(after.status == 0, "\(after.stderr)")
        #expect(after.stdoutText.contains(" escrow ") && after.stdoutText.contains("step 4"), "\(after.stdoutText)")
    }
}

extension EscrowToolTests {
    @Test(arguments: StoreBackend.allCases) func messageCenterLetsTheSenderReopenWithTheirAccount(_ backend: StoreBackend) throws {
        let s = try Setup("escrow_message_center = yes", backend: backend)
        let input = Self.routed()
        let refused = try s.pack(input)
        #expect(refused.status == 75 && refused.stdout.isEmpty)
        #expect(refused.stderr.contains("alice@clinic.test"), "\(refused.stderr)")
        #expect(try s.run("sl-escrow", ["account", "add", "--password-file", try s.file("pw", "alice's long password\n"), "alice@clinic.test"]).status == 0)
        let packed = try s.pack(input)
        #expect(packed.status == 0, "\(packed.stderr)")
        let link = try Self.link(in: try #require(try Self.notices(packed)["dan@example.net"]))
        let id = String(link.split(separator: "/").dropLast().last!)
        let wrong = try s.run("sl-escrow", ["open", "--as-sender", id, "--password-file", try s.file("bad", "guess\n")])
        #expect(wrong.status == 77 && wrong.stdout.isEmpty)
        let mine = try s.run("sl-escrow", ["open", "--as-sender", id, "--password-file", try s.file("pw2", "alice's long password\n")])
        #expect(mine.status == 0, "\(mine.stderr)")
        #expect(mine.stdout == (try Self.original(input)))
    }

    /// `open` at a real terminal (a pseudo-terminal driven by Python's pty module):
    /// the prompts go to the terminal, the answer is not echoed, the message goes
    /// to standard output only.
    @Test(arguments: StoreBackend.allCases) func openAtATerminalAsksAndDoesNotEchoTheAnswer(_ backend: StoreBackend) throws {
        let s = try Setup(backend: backend)
        let input = Self.routed()
        let notices = try Self.notices(try s.pack(input))
        let link = try Self.link(in: notices["carol@example.org"]!)
        let out = s.dir.appendingPathComponent("opened").path
        let transcript = s.dir.appendingPathComponent("tty").path
        let binary = Tools.binDirectory.appendingPathComponent("sl-escrow").path
        let driver = """
        import os, pty, select, sys, time
        binary, config, out, transcript, link = sys.argv[1:6]
        pid, fd = pty.fork()
        if pid == 0:
            o = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(o, 1)
            os.execv(binary, [binary, "open", "--config", config])
        seen = b""
        def wait_for(text):
            global seen
            deadline = time.time() + 20
            while text not in seen and time.time() < deadline:
                if not select.select([fd], [], [], 1)[0]: continue
                try: seen += os.read(fd, 1024)
                except OSError: break
        wait_for(b"Link from the notice: ")
        os.write(fd, link.encode() + b"\\n")
        wait_for(b"Answer (not shown): ")
        os.write(fd, b"fluffy THE cat\\n")
        deadline = time.time() + 20
        while time.time() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done: break
            if select.select([fd], [], [], 0.2)[0]:
                try: seen += os.read(fd, 1024)
                except OSError: pass
        else:
            os.kill(pid, 9); os.waitpid(pid, 0)
            open(transcript, "wb").write(seen)
            sys.exit("sl-escrow open did not finish: " + seen.decode(errors="replace"))
        while select.select([fd], [], [], 0.2)[0]:
            try:
                more = os.read(fd, 1024)
                if not more: break
                seen += more
            except OSError: break
        open(transcript, "wb").write(seen)
        sys.exit(os.WEXITSTATUS(status))
        """
        let r = try Tools.runCommand(["python3", "-c", driver, binary, s.config, out, transcript, link], stdin: [])
        #expect(r.status == 0, "\(r.stderr)")
        let tty = String(decoding: try Data(contentsOf: URL(fileURLWithPath: transcript)), as: UTF8.self)
        #expect(tty.contains("Name of your first pet?"), "\(tty)")
        #expect(!tty.lowercased().contains("fluffy"), "the answer was echoed: \(tty)")
        #expect(!tty.contains("Lab results"), "the message went to the terminal")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: out))) == (try Self.original(input)))
    }
}
