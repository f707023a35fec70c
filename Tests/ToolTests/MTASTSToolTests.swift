import Foundation
import Testing
import SLMessage
import SLTestPeers

/// MTA-STS in the built tools, against real parts on loopback (MTASTSPeers: nginx
/// serving the policies, dnsmasq the TXT records; Peers: the Postfix MX hosts):
/// sl-tls-probe's verdicts and evidence, sl-classify's live probe in the audit
/// log, and sl-deliver's enforcement for every message to an enforce domain.
@Suite struct MTASTSToolTests {
    struct Setup {
        let dir: URL
        var config: String { dir.appendingPathComponent("sl.conf").path }
        var queue: String { dir.appendingPathComponent("queue").path }
        var audit: String { dir.appendingPathComponent("audit.jsonl").path }

        /// `withPort`: say mta_sts_port in sl.conf (else the tools use 443).
        init(_ extra: String = "", withPort: Bool = true) throws {
            let sts = try MTASTSPeers.shared.get()
            dir = try Tools.scratch()
            var conf = sts.configuration
            if !withPort { conf = conf.split(separator: "\n").filter { !$0.hasPrefix("mta_sts_port") }.joined(separator: "\n") + "\n" }
            try (conf + "queue_directory = queue\nask_sender = no\n" + extra).write(toFile: config, atomically: true, encoding: .utf8)
        }

        var queued: [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: queue)) ?? []).filter { $0.hasSuffix(".eml") }
        }

        func auditRecords() throws -> [[String: Any]] {
            try Tools.jsonLines(audit)
        }

        func json(_ path: String) throws -> [String: Any] {
            let data = try Data(contentsOf: dir.appendingPathComponent(path))
            return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }
    }

    // MARK: sl-tls-probe

    @Test func probeReportsVerdictsAndEvidence() throws {
        let setup = try Setup()
        let names = ["enforce.sts.test", "mismatch.sts.test", "testing.sts.test", "untrusted.sts.test"]
        let run = try Tools.run("sl-tls-probe", ["--config", setup.config, "--json", "--update-cache"] + names, stdin: [])
        #expect(run.status == 0, "\(run.stderr)")
        let lines = try run.stdoutText.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(lines.count == names.count)
        for (line, name) in zip(lines, names) {
            let d = MTASTSPeers.domain(name)
            #expect(line["verdict"] as? String == d.verdict, "\(line)")
            let sts = try #require(line["mtaSTS"] as? [String: Any], "\(line)")
            #expect(sts["mode"] as? String == d.mode, "\(sts)")
            #expect(sts["result"] as? String == d.problem, "\(sts)")
            #expect(sts["cached"] as? Bool == false)
        }
        let enforce = try #require(lines[0]["mtaSTS"] as? [String: Any])
        #expect(enforce["id"] as? String == "e1" && enforce["mx"] as? [String] == ["mx.on.test"] && enforce["maxAge"] as? Int == 86_400)
        #expect((lines[2]["mtaSTS"] as? [String: Any])?["failures"] as? [String] != nil, "testing mode reports what enforce would refuse")

        // The TLS cache entry carries the evidence; the policies sit beside it.
        let cache = try #require(try setup.json("tls-cache.json")["domains"] as? [String: [String: Any]])
        #expect((cache["mismatch.sts.test"]?["mta_sts"] as? String)?.contains("MTA-STS enforce id=m1") == true, "\(cache)")
        let policies = try #require(try setup.json("mta-sts.json")["domains"] as? [String: [String: Any]])
        #expect(Set(policies.keys) == ["enforce.sts.test", "mismatch.sts.test", "testing.sts.test"])

        // A second run answers from the policy cache (the TXT id is unchanged).
        let again = try Tools.run("sl-tls-probe", ["--config", setup.config, "--json", "mismatch.sts.test"], stdin: [])
        #expect(again.stdoutText.contains("\"cached\":true"), "\(again.stdoutText)")
        // Text output shows the policy too.
        let text = try Tools.run("sl-tls-probe", ["--config", setup.config, "enforce.sts.test"], stdin: [])
        #expect(text.stdoutText.contains("MTA-STS enforce id=e1 mx=mx.on.test"), "\(text.stdoutText)")
    }

    /// --mta-sts-port is what reaches the test's policy server; without it (443,
    /// where no policy host listens) there is no policy and WebPKI alone decides.
    @Test func theHTTPSPortOption() throws {
        let sts = try MTASTSPeers.shared.get()
        let setup = try Setup(withPort: false)
        let without = try Tools.run("sl-tls-probe", ["--config", setup.config, "--json", "mismatch.sts.test"], stdin: [])
        #expect(without.stdoutText.contains("\"verdict\":\"verified\"") && without.stdoutText.contains("sts-policy-fetch-error"), "\(without.stdoutText)")
        let with = try Tools.run("sl-tls-probe", ["--config", setup.config, "--json", "--mta-sts-port", "\(sts.httpsPort)", "mismatch.sts.test"], stdin: [])
        #expect(with.stdoutText.contains("\"verdict\":\"encrypted\""), "\(with.stdoutText)")
        let bad = try Tools.run("sl-tls-probe", ["--config", setup.config, "--mta-sts-port", "0", "on.test"], stdin: [])
        #expect(bad.status == 64, "\(bad.stderr)")
    }

    // MARK: sl-classify's live probe

    @Test func classifyLogsThePolicy() throws {
        let setup = try Setup("tls_probe_timeout = 15\n[account clinic]\ndomains = clinic.test\ntls_only = yes\nfallback = insecure\n")
        let run = try Tools.run("sl-classify", ["--config", setup.config, "-f", "a@clinic.test", "bob@enforce.sts.test", "carol@mismatch.sts.test"],
                                stdin: bytes("From: a@clinic.test\nSubject: x\n\nbody\n"))
        #expect(run.status == 0, "\(run.stderr)")
        let records = try setup.auditRecords()
        let bob = try #require(records.first { $0["recipient"] as? String == "bob@enforce.sts.test" })
        #expect(bob["method"] as? String == "tls")
        #expect((bob["reason"] as? String)?.contains("MTA-STS enforce id=e1 mx=mx.on.test") == true, "\(bob)")
        let carol = try #require(records.first { $0["recipient"] as? String == "carol@mismatch.sts.test" })
        #expect(carol["method"] as? String == "insecure", "the enforce policy refuses the MX: not TLS-only")
        #expect((carol["reason"] as? String)?.contains("refuses mx.on.test") == true, "\(carol)")
    }

    // MARK: sl-deliver

    /// Enforce applies to every message, not only TLS-only copies: an ordinary
    /// message to a domain whose policy refuses its MX host (or whose MX has no
    /// TLS) waits in the queue — never plaintext, never sent.
    @Test(arguments: ["mismatch.sts.test", "plain.sts.test", "untrustedmx.sts.test"])
    func deliverDefersWhatTheEnforcePolicyRefuses(_ domain: String) throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let marker = "m-\(UUID().uuidString)"
        let run = try Tools.run("sl-deliver", ["--config", setup.config, "--timeout", "20"],
                                stdin: DeliverToolTests.routed(to: ["bob@\(domain)"], tls: "opportunistic", marker: marker))
        #expect(run.status == 0, "\(run.stderr)")
        for s in Peers.servers { #expect(peers.delivered(to: s, containing: marker, wait: 1).isEmpty, "sent to \(s.mxHost)") }
        #expect(setup.queued.count == 1)
        let record = try #require(try setup.auditRecords().first)
        #expect(record["outcome"] as? String == "deferred")
        #expect(record["status"] as? String == "4.7.5")
        #expect((record["reply"] as? String)?.contains("MTA-STS policy of \(domain) (enforce") == true, "\(record)")
    }

    /// RFC 8689 section 5: `TLS-Required: No` lets an ordinary message past the
    /// enforce policy that holds the same message without the field.
    @Test func tlsRequiredNoGoesPastTheEnforcePolicy() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let marker = "m-\(UUID().uuidString)"
        let plain = String(decoding: DeliverToolTests.routed(to: ["bob@plain.sts.test"], tls: "opportunistic", marker: marker), as: UTF8.self)
        let optedOut = Array(plain.replacingOccurrences(of: "Subject: \(marker)\n", with: "Subject: \(marker)\nTLS-Required: No\n").utf8)
        let run = try Tools.run("sl-deliver", ["--config", setup.config, "--timeout", "20"], stdin: optedOut)
        #expect(run.status == 0, "\(run.stderr)")
        let arrived = Peers.servers.flatMap { peers.delivered(to: $0, containing: marker, wait: 2) }
        #expect(arrived.count == 1, "\(run.stderr)")
        #expect(setup.queued.isEmpty)
        #expect(try setup.auditRecords().first?["outcome"] as? String == "delivered")
    }

    @Test func deliverSendsOverVerifiedTLSToAMatchingMX() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        for domain in ["enforce.sts.test", "wildcard.sts.test"] {
            let marker = "m-\(UUID().uuidString)"
            let run = try Tools.run("sl-deliver", ["--config", setup.config, "--timeout", "20"],
                                    stdin: DeliverToolTests.routed(to: ["bob@\(domain)"], tls: "opportunistic", marker: marker))
            #expect(run.status == 0, "\(run.stderr)")
            let arrived = try #require(peers.delivered(to: Peers.server("on"), containing: marker).first)
            #expect(arrived.contains("using TLSv1."), "\(arrived)")
        }
        #expect(setup.queued.isEmpty)
    }

    /// TLS-only to an enforce domain that refuses its MX: not sent, kept for a new decision.
    @Test func tlsOnlyToARefusingDomainIsNotSent() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let marker = "m-\(UUID().uuidString)"
        let run = try Tools.run("sl-deliver", ["--config", setup.config, "--timeout", "20"],
                                stdin: DeliverToolTests.routed(to: ["bob@mismatch.sts.test"], tls: "required", marker: marker))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(peers.delivered(to: Peers.server("on"), containing: marker, wait: 2).isEmpty)
        #expect(setup.queued.count == 1)
        #expect(try setup.auditRecords().first?["outcome"] as? String == "reroute")
    }

    /// testing: delivered as without a policy (here in plaintext: the MX has no
    /// TLS), and what enforce would refuse is said on stderr.
    @Test func testingModeDeliversAndNotes() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let marker = "m-\(UUID().uuidString)"
        let run = try Tools.run("sl-deliver", ["--config", setup.config, "--timeout", "20"],
                                stdin: DeliverToolTests.routed(to: ["bob@testing.sts.test"], tls: "opportunistic", marker: marker))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(peers.delivered(to: Peers.server("off"), containing: marker).count == 1)
        #expect(run.stderr.contains("MTA-STS policy of testing.sts.test is in testing mode"), "\(run.stderr)")
        #expect(setup.queued.isEmpty)
    }
}
