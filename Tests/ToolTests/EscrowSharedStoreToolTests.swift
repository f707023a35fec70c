import Foundation
import Testing
import SLMessage
import SLTestPeers

/// One store used by several processes at once, as several machines share a store
/// in PostgreSQL (each process has its own connection, as a machine would): the
/// counters that guard a message stay exact, receipts go once, a retraction never
/// yields half a message, and a packer killed inside its transaction leaves
/// nothing. The same tests run on the SQLite store, where the processes share a
/// machine. Then what is PostgreSQL's own: migrate, copy, and a database that is
/// down or not migrated.
@Suite struct EscrowSharedStoreToolTests {
    typealias Setup = EscrowToolTests.Setup

    /// Runs `body(i)` for i in 0..<n on n threads at once; the results in order.
    static func together<T: Sendable>(_ n: Int, _ body: @Sendable @escaping (Int) throws -> T) -> [Result<T, any Error>] {
        let box = ResultBox<T>(n)
        DispatchQueue.concurrentPerform(iterations: n) { i in
            let r = Result { try body(i) }
            box.lock.lock(); box.results[i] = r; box.lock.unlock()
        }
        return box.results.map { $0! }
    }

    static func id(of link: String) -> String { String(link.split(separator: "/").dropLast().last!) }

    /// Two "machines" guess wrong answers at one message as fast as they can: the
    /// guesses that count are exactly escrow_max_attempts in total, every other
    /// one meets the lock, and the right answer is refused afterwards.
    @Test(arguments: StoreBackend.allCases) func wrongAnswersFromTwoMachinesLockOutAtExactlyTheLimit(_ backend: StoreBackend) throws {
        let s = try Setup("escrow_max_attempts = 7", backend: backend)
        let link = try EscrowToolTests.link(in: try #require(try EscrowToolTests.notices(try s.pack(EscrowToolTests.routed()))["carol@example.org"]))
        let linkFile = try s.file("link", link), answerFile = try s.file("wrong", "Rex\n")
        let runs = Self.together(2) { _ in
            try (0..<12).map { _ in
                try s.run("sl-escrow", ["open", "--link-file", linkFile, "--answer-file", answerFile])
            }
        }.flatMap { (try? $0.get()) ?? [] }
        #expect(runs.count == 24)
        let counted = runs.filter { $0.stderr.contains("wrong answer (") }
        let locked = runs.filter { $0.stderr.contains("locked: too many wrong answers") }
        #expect(counted.count == 7, "\(runs.map(\.stderr))")
        #expect(locked.count == 24 - 7)
        #expect(runs.allSatisfy { $0.status == 77 && $0.stdout.isEmpty })
        // Each counted guess was told a different number of attempts left: none was
        // counted twice, none lost.
        let left = Set(counted.compactMap { r in r.stderr.split(separator: "(").last.flatMap { Int($0.prefix { $0.isNumber }) } })
        #expect(left == Set(0..<7), "\(counted.map(\.stderr))")
        let right = try s.open(link: link, answer: "Fluffy the cat")
        #expect(right.status == 77 && right.stderr.contains("locked"), "\(right.stderr)")
        #expect(try s.sql("select failed_attempts, locked from recipients where address = 'carol@example.org'") == "7|1")
    }

    /// Both recipients open, then two `sl-escrow receipts` run at once, several
    /// rounds: every receipt is written exactly once between them.
    @Test(arguments: StoreBackend.allCases) func receiptsRunOnTwoMachinesGoOnce(_ backend: StoreBackend) throws {
        let s = try Setup(backend: backend)
        var expected = 0
        for round in 0..<4 {
            let notices = try EscrowToolTests.notices(try s.pack(EscrowToolTests.routed(subject: "round \(round)")))
            #expect(try s.open(link: try EscrowToolTests.link(in: notices["carol@example.org"]!), answer: "Fluffy the cat").status == 0)
            #expect(try s.open(link: try EscrowToolTests.link(in: notices["dan@example.net"]!), answer: "PN-4711").status == 0)
            expected += 2
            let runs = Self.together(2) { _ in try s.run("sl-escrow", ["receipts"]) }.compactMap { try? $0.get() }
            #expect(runs.count == 2 && runs.allSatisfy { $0.status == 0 }, "\(runs.map(\.stderr))")
            let written = try runs.map { try Tools.messages($0.stdout).count }.reduce(0, +)
            #expect(written == 2, "round \(round): \(written) receipts for two opens")
        }
        #expect(try s.run("sl-escrow", ["receipts"]).stdout.isEmpty)
        #expect(try s.sql("select count(*) from recipients where receipt_sent = 1") == "\(expected)")
    }

    /// A message retracted while other processes open it: each open gives the whole
    /// message or says it was retracted, never a part or "corrupt".
    @Test(arguments: StoreBackend.allCases) func openingWhileItIsRetractedGivesAllOrRetracted(_ backend: StoreBackend) throws {
        let s = try Setup(backend: backend)
        let input = EscrowToolTests.routed(body: String(repeating: "A line of a long report that takes a while to read.\n", count: 60_000))
        let packed = try s.pack(input)
        #expect(packed.status == 0, "\(packed.stderr)")
        let link = try EscrowToolTests.link(in: try #require(try EscrowToolTests.notices(packed)["dan@example.net"]))
        let original = try EscrowToolTests.original(input)
        let linkFile = try s.file("link", link), answerFile = try s.file("answer", "PN-4711\n")
        let results = Self.together(3) { i -> [ToolRun] in
            if i == 2 {
                Thread.sleep(forTimeInterval: 0.4)
                return [try s.run("sl-escrow", ["retract", Self.id(of: link)])]
            }
            return try (0..<6).map { _ in try s.run("sl-escrow", ["open", "--link-file", linkFile, "--answer-file", answerFile]) }
        }.map { try? $0.get() }
        let retract = try #require(results[2]?.first)
        #expect(retract.status == 0, "\(retract.stderr)")
        let opens = (results[0] ?? []) + (results[1] ?? [])
        #expect(opens.count == 12)
        for r in opens {
            if r.status == 0 {
                #expect(r.stdout == original)
            } else {
                #expect(r.status == 77 && r.stdout.isEmpty && r.stderr.contains("retracted"), "\(r.status): \(r.stderr)")
            }
        }
        #expect(try s.open(link: link, answer: "PN-4711").stderr.contains("retracted"))
        #expect(try s.sealedCount() == 0, "retracted for carol too: one message, one content")
    }

    /// sl-escrow-pack killed while its transaction is open (a 100 MB message going
    /// into the database): nothing of it is visible, not even its content.
    @Test func aPackerKilledInsideItsTransactionLeavesNothing() throws {
        let s = try Setup(backend: .postgresql)
        let peer = try PostgresPeer.shared.get()
        let database = PostgresPeer.database(of: try #require(s.uri))
        let input = EscrowToolTests.hundredMegabytes()
        let file = s.dir.appendingPathComponent("big.eml")
        try Data(input).write(to: file)
        let p = Process()
        p.executableURL = Tools.binDirectory.appendingPathComponent("sl-escrow-pack")
        p.arguments = ["--config", s.config]
        p.standardInput = try FileHandle(forReadingFrom: file)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait until its transaction has written content rows (uncommitted: only
        // the size of the table on disk shows them), then kill it.
        let deadline = Date().addingTimeInterval(60)
        var inTransaction = false
        while Date() < deadline && p.isRunning {
            let open = try peer.psql(database, """
                SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'sl'
                AND xact_start IS NOT NULL AND query LIKE 'INSERT INTO content%'
                """).trimmingCharacters(in: .whitespacesAndNewlines)
            if open != "0" {
                inTransaction = true
                break
            }
            usleep(20_000)
        }
        #expect(inTransaction && p.isRunning, "the packer was not caught inside its transaction")
        usleep(300_000)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        // The server rolls the transaction back when the connection drops.
        var left = ""
        for _ in 0..<100 {
            left = try s.sql("select (select count(*) from messages), (select count(*) from recipients), (select count(*) from content)")
            let active = try peer.psql(database, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'sl'")
            if active.trimmingCharacters(in: .whitespacesAndNewlines) == "0" { break }
            usleep(50_000)
        }
        #expect(left == "0|0|0")
        #expect(try s.run("sl-escrow", ["verify"]).status == 0)
        #expect(try s.run("sl-escrow", ["list", "--json"]).stdout.isEmpty)
    }

    /// Two machines run migrate at once on a new database: both succeed, one makes
    /// the schema, and the version is recorded once.
    @Test func migrateFromTwoMachinesAtOnce() throws {
        let peer = try PostgresPeer.shared.get()
        let uri = try peer.newDatabase()
        let runs = Self.together(2) { _ in try Tools.run("sl-escrow", ["migrate", "--store", uri], stdin: []) }.compactMap { try? $0.get() }
        #expect(runs.count == 2 && runs.allSatisfy { $0.status == 0 }, "\(runs.map(\.stderr))")
        let lines = runs.map(\.stdoutText).sorted()
        #expect(lines.contains { $0.contains("migrated from version 0 to 1") } && lines.contains { $0.contains("nothing to do") }, "\(lines)")
        #expect(runs.allSatisfy { $0.stderr.isEmpty }, "no notices on stderr: \(runs.map(\.stderr))")
        #expect(try peer.psql(PostgresPeer.database(of: uri), "SELECT version FROM sl_schema WHERE component = 'escrow'")
                    .trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        // The TLS cache can share the database: its own schema beside the store's.
        let config = try Tools.scratch().appendingPathComponent("sl.conf").path
        try "escrow_store = \(uri)\ntls_cache = \(uri)\n".write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try Tools.run("sl-tls-probe", ["--config", config, "--migrate"], stdin: []).status == 0)
        #expect(try peer.psql(PostgresPeer.database(of: uri), "SELECT component || ' ' || version FROM sl_schema ORDER BY component")
                    .split(separator: "\n") == ["escrow 1", "tls_cache 1"])
        #expect(try Tools.run("sl-escrow", ["list", "--config", config], stdin: []).status == 0)
    }

    /// Before migrate, every tool stops with the command to run (78); a server that
    /// is down defers the message (75); a password in the URI is refused (78).
    @Test func aMissingSchemaOrServerStopsWithTheRightExit() throws {
        let peer = try PostgresPeer.shared.get()
        let unmigrated = try peer.newDatabase()
        let closed = "postgresql://postgres@127.0.0.1:\(try Peers.freePort(type: SOCK_STREAM))/escrow"
        let s = try Setup()
        for (uri, status, words) in [(unmigrated, Int32(78), "run sl-escrow migrate"), (closed, 75, "cannot connect")] {
            let pack = try s.run("sl-escrow-pack", ["--store", uri], EscrowToolTests.routed())
            #expect(pack.status == status && pack.stdout.isEmpty, "\(pack.stderr)")
            #expect(pack.stderr.contains(words) && pack.stderr.split(separator: "\n").count == 1, "\(pack.stderr)")
            let list = try s.run("sl-escrow", ["list", "--store", uri])
            #expect(list.status == status && list.stderr.contains(words), "\(list.stderr)")
        }
        let config = try s.file("secret.conf", "escrow_store = postgresql://postgres:secret@127.0.0.1:5432/escrow\n")
        let r = try Tools.run("sl-escrow", ["list", "--config", config], stdin: [])
        #expect(r.status == 78 && r.stderr.contains("PGPASSFILE") && !r.stderr.contains("secret@"), "\(r.stderr)")
        // Nor on a command line, where every user of the machine sees it in ps.
        for tool in ["sl-escrow", "sl-escrow-pack"] {
            let argv = tool == "sl-escrow" ? ["list", "--store", "postgresql://postgres:secret@127.0.0.1:5432/escrow"]
                                           : ["--store", "postgresql://postgres:secret@127.0.0.1:5432/escrow"]
            let run = try s.run(tool, argv, EscrowToolTests.routed())
            #expect(run.status == 78 && run.stderr.contains("PGPASSFILE") && !run.stderr.contains("secret@") && run.stdout.isEmpty,
                    "\(tool): \(run.stderr)")
        }
    }

    /// A clinic outgrows one machine: `sl-escrow copy` moves its SQLite store, sealed
    /// content, accounts and all, into PostgreSQL. Afterwards the old links open
    /// there, opens, retractions and receipts are as they were, and a second copy
    /// into the same database is refused.
    @Test func copyMovesASQLiteStoreIntoPostgreSQL() throws {
        let s = try Setup()
        #expect(try s.run("sl-escrow", ["account", "add", "--password-file", try s.file("pw", "correct horse battery\n"), "erin@example.com"]).status == 0)
        let first = EscrowToolTests.routed(subject: "first")
        let notices = try EscrowToolTests.notices(try s.pack(first))
        let carol = try EscrowToolTests.link(in: notices["carol@example.org"]!)
        let dan = try EscrowToolTests.link(in: notices["dan@example.net"]!)
        #expect(try s.open(link: dan, answer: "PN-4711").status == 0)
        #expect(try s.open(link: carol, answer: "Rex").status == 77)
        let erinInput = EscrowToolTests.routed(subject: "for erin", recipients: [("erin@example.com", "escrow=login")])
        let erin = try EscrowToolTests.link(in: try #require(try EscrowToolTests.notices(try s.pack(erinInput))["erin@example.com"]))
        let gone = try EscrowToolTests.link(in: try #require(try EscrowToolTests.notices(try s.pack(EscrowToolTests.routed(subject: "gone")))["dan@example.net"]))
        #expect(try s.run("sl-escrow", ["retract", Self.id(of: gone)]).status == 0)
        let before = try s.run("sl-escrow", ["list", "--json"]).stdoutText

        let uri = try PostgresPeer.shared.get().newDatabase()
        let unmigrated = try s.run("sl-escrow", ["copy", "--to", uri])
        #expect(unmigrated.status == 78 && unmigrated.stderr.contains("sl-escrow migrate"), "\(unmigrated.stderr)")
        #expect(try Tools.run("sl-escrow", ["migrate", "--store", uri], stdin: []).status == 0)
        let copy = try s.run("sl-escrow", ["copy", "--to", uri])
        #expect(copy.status == 0, "\(copy.stderr)")
        #expect(copy.stdoutText.contains("messages 3") && copy.stdoutText.contains("accounts 1")
                && copy.stdoutText.contains("2 sealed contents"), "\(copy.stdoutText)")
        #expect(try s.run("sl-escrow", ["copy", "--to", uri]).status == 73)
        #expect(try s.run("sl-escrow", ["copy", "--to", "/tmp/elsewhere"]).status == 64)

        // The same installation, now on the database.
        let t = Setup(copying: s, store: uri)
        #expect(try t.run("sl-escrow", ["list", "--json"]).stdoutText == before)
        #expect(try t.run("sl-escrow", ["verify"]).status == 0)
        let opened = try t.open(link: carol, answer: "Fluffy the cat")
        let original = try EscrowToolTests.original(first)
        #expect(opened.status == 0 && opened.stdout == original, "\(opened.stderr)")
        #expect(try t.open(link: erin, password: "correct horse battery").stdout == (try EscrowToolTests.original(erinInput)))
        #expect(try t.open(link: gone, answer: "PN-4711").stderr.contains("retracted"))
        let receipts = try Tools.messages(try t.run("sl-escrow", ["receipts"]).stdout)
        #expect(receipts.count == 3, "dan's open before the copy, carol's and erin's after")
        #expect(try t.sql("select sum(failed_attempts) from recipients") == "0", "carol's failed guess was reset by her open")
    }
}

/// Results gathered from several threads.
private final class ResultBox<T>: @unchecked Sendable {
    var results: [Result<T, any Error>?]
    let lock = NSLock()
    init(_ n: Int) { results = Array(repeating: nil, count: n) }
}

extension EscrowToolTests.Setup {
    /// The same scratch installation with escrow_store pointed elsewhere.
    init(copying other: Self, store uri: String) {
        dir = other.dir
        backend = .postgresql
        self.uri = uri
        let text = (try? String(contentsOfFile: other.config, encoding: .utf8)) ?? ""
        let moved = text.replacingOccurrences(of: "escrow_store = store", with: "escrow_store = \(uri)")
        try? moved.write(toFile: config, atomically: true, encoding: .utf8)
    }
}
