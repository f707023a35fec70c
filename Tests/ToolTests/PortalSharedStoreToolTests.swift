import Foundation
import Testing
import SLTestPeers

extension PortalToolTests {
    /// Two sl-portal processes, as on two machines behind a load balancer, on one
    /// escrow store in PostgreSQL: wrong answers sent to both at once lock the
    /// message after exactly escrow_max_attempts in total, and an open or a
    /// retraction through one is what the other sees.
    @Test func twoPortalsOnOneDatabaseShareLockoutsOpensAndRetractions() throws {
        let peer = try PostgresPeer.shared.get()
        let uri = try peer.newDatabase()
        let installation = try Installation("escrow_max_attempts = 6\nportal_rate_limit = 1000", store: uri)
        let migrate = try Tools.run("sl-escrow", ["migrate", "--config", installation.config], stdin: [])
        try #require(migrate.status == 0, "\(migrate.stderr)")
        let guessed = try #require(EscrowLinkParts(try installation.seal()))
        let opened = try #require(EscrowLinkParts(try installation.seal()))
        let retracted = try #require(EscrowLinkParts(try installation.seal()))
        let servers = [try Server(installation), try Server(installation)]
        defer { for s in servers where s.process.isRunning { _ = s.stop() } }
        try #require(servers.allSatisfy { $0.port != 0 })

        // Each portal signs its own CSRF tokens: a jar and a token per portal.
        let sessions = try servers.enumerated().map { (i, server) -> (jar: String, csrf: String) in
            let jar = installation.dir.appendingPathComponent("jar\(i)").path
            return (jar, try Self.token(try Self.curl(server.local(guessed.page), jar: jar).body))
        }
        let pages = servers.map { $0.local(guessed.page) }
        let replies = EscrowSharedStoreToolTests.together(2) { i -> [Reply] in
            try (0..<10).map { _ in
                try Self.curl(pages[i], form: [("csrf", sessions[i].csrf), ("secret", guessed.secret),
                                                                      ("answer", "Rex-Wrong-Answer")], jar: sessions[i].jar)
            }
        }.flatMap { (try? $0.get()) ?? [] }
        #expect(replies.count == 20)
        #expect(replies.allSatisfy { $0.status == 403 || $0.status == 423 }, "\(replies.map(\.status))")
        // Each guess told "n attempts left" was charged on its own: no number twice.
        let left = replies.compactMap { r in r.body.firstMatch(of: /not right\. ([0-9]+) attempts? left/).map { Int($0.output.1)! } }
        #expect(Set(left).count == left.count && left.allSatisfy { $0 < 6 }, "\(left)")
        #expect(try peer.psql(PostgresPeer.database(of: uri), """
            SELECT failed_attempts, locked FROM sl_escrow.recipients WHERE message_id = '\(guessed.id)'
            """).trimmingCharacters(in: .whitespacesAndNewlines) == "6|1")
        for (i, server) in servers.enumerated() {
            let right = try Self.curl(server.local(guessed.page), form: [("csrf", sessions[i].csrf), ("secret", guessed.secret),
                                                                          ("answer", Self.answer)], jar: sessions[i].jar)
            #expect(right.status == 423, "portal \(i): \(right.status)")
        }

        // The server drops every connection of the portals (as a restart or a
        // failover would): they connect again on their next request.
        let dropped = try peer.psql(PostgresPeer.database(of: uri), """
            SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'sl'
            """).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect((Int(dropped) ?? 0) >= 2, "\(dropped) connections dropped")

        // Opened through the second portal: the first open is on record for all.
        let open = try Self.curl(servers[1].local(opened.page), form: [("csrf", sessions[1].csrf), ("secret", opened.secret),
                                                                         ("answer", Self.answer)], jar: sessions[1].jar)
        #expect(open.status == 200 && open.body.contains(Self.text))
        let status = try Tools.run("sl-escrow", ["status", "--json", opened.id, "--config", installation.config], stdin: [])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout)) as? [String: Any])
        #expect((json["recipients"] as? [[String: Any]])?.first?["firstOpen"] != nil, "\(status.stdoutText)")

        // Retracted from the command line: gone on both portals.
        #expect(try Tools.run("sl-escrow", ["retract", retracted.id, "--config", installation.config], stdin: []).status == 0)
        for (i, server) in servers.enumerated() {
            let gone = try Self.curl(server.local(retracted.page), form: [("csrf", sessions[i].csrf), ("secret", retracted.secret)],
                                     jar: sessions[i].jar)
            #expect(gone.status == 410 && gone.body.contains("withdrawn"), "portal \(i): \(gone.status)")
        }
        for server in servers { #expect(server.stop() == 0) }
    }
}
