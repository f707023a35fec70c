import Foundation
import Testing
import SLMessage
import SLTestPeers

/// sl-tls-probe and sl-classify, as built, with `tls_cache` in a real PostgreSQL
/// (started on loopback by the tests) and the real SMTP and DNS peers.
@Suite struct PostgresTLSCacheToolTests {
    struct Setup {
        let dir: URL
        let uri: String
        let peer: PostgresPeer
        var path: String { dir.appendingPathComponent("sl.conf").path }
        var database: String { PostgresPeer.database(of: uri) }

        /// A configuration whose TLS cache is a new database (no schema yet unless
        /// `migrated`); the peers' own file cache line is left out.
        init(_ extra: String = "", migrated: Bool = true) throws {
            let peers = try Peers.shared.get()
            peer = try PostgresPeer.shared.get()
            uri = try peer.newDatabase()
            dir = try Tools.scratch()
            let base = peers.configuration.split(separator: "\n").filter { !$0.hasPrefix("tls_cache") }.joined(separator: "\n")
            try (base + "\ntls_cache = \(uri)\ntransport_map = transport\nask_sender = no\n" + extra)
                .write(toFile: path, atomically: true, encoding: .utf8)
            try route("")
            if migrated {
                let run = try Tools.run("sl-tls-probe", ["--config", path, "--migrate"], stdin: [])
                #expect(run.status == 0, "\(run.stderr)")
            }
        }

        func route(_ table: String) throws {
            try table.write(toFile: dir.appendingPathComponent("transport").path, atomically: true, encoding: .utf8)
        }

        /// domain -> verdict, as psql reads the table (not through the code under test).
        func rows() throws -> [String: String] {
            var out: [String: String] = [:]
            for line in try peer.psql(database, "SELECT domain, verdict FROM sl_tls_cache").split(separator: "\n") {
                let f = line.split(separator: "|").map(String.init)
                out[f[0]] = f[1]
            }
            return out
        }

        func probe(_ args: [String]) throws -> ToolRun {
            try Tools.run("sl-tls-probe", ["--config", path] + args, stdin: [])
        }
    }

    @Test func aMissingSchemaIsOneLineExit78NamingTheMigrateCommand() throws {
        let setup = try Setup("[account clinic]\ndomains = clinic.test\ntls_only = yes\nfallback = insecure\n", migrated: false)
        for run in [try setup.probe(["--warm", "on.test"]),
                    try Tools.run("sl-classify", ["--config", setup.path, "-f", "a@clinic.test", "bob@on.test"],
                                  stdin: bytes("From: a@clinic.test\nSubject: x\n\nbody\n"))] {
            #expect(run.status == 78, "\(run.stderr)")
            #expect(run.stdout.isEmpty)
            #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
            #expect(run.stderr.contains("run sl-tls-probe --migrate"), "\(run.stderr)")
        }
        #expect(try setup.peer.psql(setup.database, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'sl_%'") == "0\n")

        let migrate = try setup.probe(["--migrate"])
        #expect(migrate.status == 0, "\(migrate.stderr)")
        #expect(migrate.stdoutText.contains("migrated from version 0 to 1"), "\(migrate.stdoutText)")
        let again = try setup.probe(["--migrate"])
        #expect(again.status == 0 && again.stdoutText.contains("nothing to do"), "\(again.stdoutText)")
    }

    @Test func warmFillsTheDatabaseThatClassifyReads() throws {
        let setup = try Setup("tls_probe = no\n[account clinic]\ndomains = clinic.test\ntls_only = yes\nfallback = insecure\n")
        let warm = try setup.probe(["--warm", "on.test", "off.test", "down.test"])
        #expect(warm.status == 75, "\(warm.stderr)")
        #expect(warm.stdoutText.hasPrefix("3 domains probed into \(setup.uri): "), "\(warm.stdoutText)")
        #expect(try setup.rows() == ["on.test": "verified", "off.test": "none", "down.test": "unreachable"])
        #expect(try setup.peer.psql(setup.database, "SELECT ttl <= 600 FROM sl_tls_cache WHERE domain = 'down.test'") == "t\n")

        // --cached answers from the database and probes (and records) only the miss.
        let cached = try setup.probe(["--cached", "--json", "on.test", "off.test", "expired.test"])
        #expect(cached.status == 0, "\(cached.stderr)")
        let lines = try cached.stdoutText.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(lines.map { $0["source"] as? String } == ["cache", "cache", "probe"])
        #expect(try setup.rows()["expired.test"] == "encrypted")

        // tls_probe = no: the database alone decides, and --explain says so.
        let run = try Tools.run("sl-classify", ["--config", setup.path, "-f", "a@clinic.test", "bob@on.test", "carol@off.test"],
                                stdin: bytes("From: a@clinic.test\nSubject: x\n\nbody\n"))
        #expect(run.status == 0, "\(run.stderr)")
        let methods = try Tools.messages(run.stdout).map { try Envelope.read(from: $0.header) }
        #expect(methods.map { $0?.method.rawValue } == ["tls", "insecure"])
        let explain = try Tools.run("sl-classify", ["--config", setup.path, "--explain", "-f", "a@clinic.test", "bob@on.test"],
                                    stdin: bytes("From: a@clinic.test\nSubject: x\n\nbody\n"))
        #expect(explain.stdoutText.contains("verified (cache)"), "\(explain.stdoutText)")

        // A verdict changed in the database (as another machine's probe would) is what
        // the next classification sees.
        try setup.peer.psql(setup.database, "UPDATE sl_tls_cache SET verdict = 'none' WHERE domain = 'on.test'")
        let after = try Tools.run("sl-classify", ["--config", setup.path, "-f", "a@clinic.test", "bob@on.test"],
                                  stdin: bytes("From: a@clinic.test\nSubject: x\n\nbody\n"))
        #expect(try Tools.messages(after.stdout).map { try Envelope.read(from: $0.header)?.method.rawValue } == ["insecure"])
    }

    /// A probe that cannot reach a domain's hosts does not erase the verified verdict
    /// another probe recorded.
    @Test func anUnreachableResultDoesNotOverwriteAVerifiedOne() throws {
        let setup = try Setup()
        #expect(try setup.probe(["--update-cache", "on.test"]).status == 0)
        try setup.route("on.test smtp:[\(Peers.deadAddress)]:25\n")
        let failed = try setup.probe(["--update-cache", "on.test"])
        #expect(failed.status == 75, "\(failed.stdoutText)")
        #expect(failed.stdoutText.contains("on.test: unreachable"), "\(failed.stdoutText)")
        #expect(try setup.rows()["on.test"] == "verified")
    }

    /// Two probe processes writing into the same database at once lose nothing.
    @Test func twoProcessesMergingAtOnceLoseNothing() throws {
        let setup = try Setup()
        let halves = [["on.test", "expired.test", "mixed.test"], ["off.test", "wrongname.test", "selfsigned.test"]]
        let statuses = NSLock()
        nonisolated(unsafe) var runs: [ToolRun] = []
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let run = try? setup.probe(["--update-cache"] + halves[i])
            statuses.lock(); if let run { runs.append(run) }; statuses.unlock()
        }
        #expect(runs.count == 2 && runs.allSatisfy { $0.status == 0 }, "\(runs.map(\.stderr))")
        #expect(try setup.rows() == ["on.test": "verified", "expired.test": "encrypted", "mixed.test": "none",
                                     "off.test": "none", "wrongname.test": "encrypted", "selfsigned.test": "encrypted"])
    }
}
