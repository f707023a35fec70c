import Foundation
import Testing
import SLMessage
import SLTestPeers

/// sl-tls-probe and sl-classify's live probe, as built, against the real peers
/// (Postfix smtpd with each TLS case, dnsmasq) on loopback.
@Suite struct TLSProbeToolTests {
    /// A configuration pointing DNS, port and trust at the peers.
    struct ProbeConfig {
        let dir: URL
        var path: String { dir.appendingPathComponent("sl.conf").path }
        var cache: String { dir.appendingPathComponent("tls-cache.json").path }

        init(_ extra: String = "") throws {
            let peers = try Peers.shared.get()
            dir = try Tools.scratch()
            try (peers.configuration + """
            ask_sender = no
            \(extra)
            """).write(toFile: path, atomically: true, encoding: .utf8)
        }

        func cacheEntries() throws -> [String: [String: Any]] {
            let data = try Data(contentsOf: URL(fileURLWithPath: cache))
            let top = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(top["version"] as? Int == 1)
            return try #require(top["domains"] as? [String: [String: Any]])
        }
    }

    func probe(_ args: [String], config: ProbeConfig, stdin: String = "") throws -> ToolRun {
        try Tools.run("sl-tls-probe", ["--config", config.path] + args, stdin: bytes(stdin))
    }

    static func jsonLines(_ run: ToolRun) throws -> [[String: Any]] {
        try run.stdoutText.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    @Test func jsonVerdictsForEveryServer() throws {
        let config = try ProbeConfig()
        let domains = Peers.servers.map(\.domain)
        let run = try probe(["--json"] + domains, config: config)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.isEmpty)
        let lines = try Self.jsonLines(run)
        #expect(lines.map { $0["domain"] as? String } == domains)
        for (line, server) in zip(lines, Peers.servers) {
            #expect(line["verdict"] as? String == server.verdict, "\(line)")
            #expect(line["result"] as? String == server.result, "\(line)")
            let host = try #require((line["hosts"] as? [[String: Any]])?.first)
            #expect(host["host"] as? String == server.mxHost)
            #expect(host["esmtp"] as? Bool == true)
        }
    }

    @Test func humanOutputAndTheExitStatusForAnUnreachableDomain() throws {
        let config = try ProbeConfig()
        let run = try probe(["on.test", "someone@off.test", "down.test"], config: config)
        #expect(run.status == 75, "\(run.stderr)")
        let text = run.stdoutText
        #expect(text.contains("on.test: verified\n"))
        #expect(text.contains("  mx.on.test 127.0.0.2:"))
        #expect(text.contains("certificate verified"))
        #expect(text.contains("off.test: none (starttls-not-supported)\n"))
        #expect(text.contains("down.test: unreachable\n"))
    }

    @Test func aListOnStdinAndTheDomainsOfAMessage() throws {
        let config = try ProbeConfig()
        let list = try probe(["--json", "-"], config: config, stdin: "# partners\non.test\n\nexpired.test  # old cert\non.test\n")
        #expect(list.status == 0, "\(list.stderr)")
        #expect(try Self.jsonLines(list).map { $0["domain"] as? String } == ["on.test", "expired.test"])

        let message = "From: a@clinic.test\nTo: Bob <bob@on.test>, carol@wrongname.test\nCc: dave@on.test\nSubject: x\n\nbody\n"
        let fromMessage = try probe(["--json", "--message"], config: config, stdin: message)
        #expect(fromMessage.status == 0, "\(fromMessage.stderr)")
        #expect(try Self.jsonLines(fromMessage).map { $0["verdict"] as? String } == ["verified", "encrypted"])
    }

    @Test func warmFillsTheCacheThatClassifyReads() throws {
        let config = try ProbeConfig("tls_probe = no\n[account clinic]\ndomains = clinic.test\ntls_only = yes\nfallback = insecure\n")
        let warm = try probe(["--warm", "on.test", "off.test", "down.test"], config: config)
        #expect(warm.status == 75, "\(warm.stderr)")
        #expect(warm.stdoutText.hasPrefix("3 domains probed into "), "\(warm.stdoutText)")
        #expect(warm.stdoutText.contains("1 verified, 0 encrypted, 1 none, 1 unreachable"), "\(warm.stdoutText)")
        let entries = try config.cacheEntries()
        #expect(entries["on.test"]?["verdict"] as? String == "verified")
        #expect(entries["off.test"]?["verdict"] as? String == "none")
        #expect((entries["down.test"]?["ttl"] as? Double ?? 1e9) <= 600)

        // --cached answers from the cache and probes (and records) only the miss.
        let cached = try probe(["--cached", "--json", "on.test", "off.test", "expired.test"], config: config)
        #expect(cached.status == 0, "\(cached.stderr)")
        let lines = try Self.jsonLines(cached)
        #expect(lines.map { $0["source"] as? String } == ["cache", "cache", "probe"])
        #expect(lines.map { $0["verdict"] as? String } == ["verified", "none", "encrypted"])
        #expect(try config.cacheEntries()["expired.test"]?["verdict"] as? String == "encrypted")

        // tls_probe = no: the cache alone decides.
        let run = try Tools.run("sl-classify", ["--config", config.path, "-f", "a@clinic.test", "bob@on.test", "carol@off.test"],
                                stdin: bytes("From: a@clinic.test\nSubject: x\n\nbody\n"))
        #expect(run.status == 0, "\(run.stderr)")
        let methods = try Tools.messages(run.stdout).map { try Envelope.read(from: $0.header) }
        #expect(methods.map { $0?.method.rawValue } == ["tls", "insecure"])
        #expect(methods.map { $0?.recipients.map(\.address) ?? [] } == [["bob@on.test"], ["carol@off.test"]])
    }

    /// End to end through DNS: sl-classify probes on a cache miss, picks TLS-only
    /// for the domain whose MX verifies and not for the others, and caches all.
    @Test func classifyProbesLiveOnACacheMiss() throws {
        let config = try ProbeConfig("tls_probe_timeout = 10\n[account clinic]\ndomains = clinic.test\ntls_only = yes\nfallback = insecure\n")
        let recipients = ["bob@on.test", "carol@off.test", "dave@expired.test", "erin@wrongname.test", "fay@down.test"]
        let run = try Tools.run("sl-classify", ["--config", config.path, "-f", "a@clinic.test"] + recipients,
                                stdin: bytes("From: a@clinic.test\nSubject: x\n\nbody\n"))
        #expect(run.status == 0, "\(run.stderr)")
        let out = try Tools.messages(run.stdout).compactMap { try Envelope.read(from: $0.header) }
        let tls = out.filter { $0.method == .tls }.flatMap { $0.recipients.map(\.address) }
        let insecure = out.filter { $0.method == .insecure }.flatMap { $0.recipients.map(\.address) }
        #expect(tls == ["bob@on.test"])
        #expect(insecure.sorted() == Array(recipients.dropFirst()).sorted())
        let entries = try config.cacheEntries()
        #expect(Set(entries.keys) == ["on.test", "off.test", "expired.test", "wrongname.test", "down.test"])
        #expect(entries["expired.test"]?["verdict"] as? String == "encrypted")

        // The explanation names the probe as the source.
        let explain = try Tools.run("sl-classify", ["--config", config.path, "--explain", "-f", "a@clinic.test", "bob@on.test"],
                                    stdin: bytes("From: a@clinic.test\nSubject: x\n\nbody\n"))
        #expect(explain.stdoutText.contains("verified (cache)"), "\(explain.stdoutText)")
    }

    @Test(arguments: [
        ([String](), Int32(64), "give domains"),
        (["--timeout", "0", "on.test"], 64, "--timeout"),
        (["--concurrency", "0", "on.test"], 64, "--concurrency"),
        (["a b.test"], 64, "not a domain name"),
        (["x@"], 64, "not an address"),
        (["--dns", "nameserver", "on.test"], 64, "--dns"),
        (["--ca-file", "/nonexistent/ca.pem", "on.test"], 78, "CA bundle"),
        (["--transport", "/nonexistent/transport", "on.test"], 78, "transport"),
        (["--message", "on.test"], 64, "--message"),
    ])
    func usageAndConfigurationErrors(args: [String], status: Int32, words: String) throws {
        let config = try ProbeConfig()
        let run = try probe(args, config: config)
        #expect(run.status == status, "\(run.stderr)")
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.hasPrefix("sl-tls-probe: "), "\(run.stderr)")
        #expect(run.stderr.contains(words), "\(run.stderr)")
        #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
    }

    @Test func aBadDNSServerInTheConfigurationIsAConfigurationError() throws {
        let config = try ProbeConfig("dns_server = not-an-address\n")
        let run = try probe(["on.test"], config: config)
        #expect(run.status == 78, "\(run.stderr)")
        #expect(run.stderr.contains("dns_server"))
    }

    /// sl-classify reads the probe settings only on a cache miss, and a broken one
    /// costs the domain TLS-only, not the message.
    @Test func classifyWithABrokenProbeSettingStillRoutesWithoutTLSOnly() throws {
        let config = try ProbeConfig("transport_map = /nonexistent/transport\n[account clinic]\ndomains = clinic.test\ntls_only = yes\nfallback = insecure\n")
        let run = try Tools.run("sl-classify", ["--config", config.path, "-f", "a@clinic.test", "bob@on.test"],
                                stdin: bytes("From: a@clinic.test\nSubject: x\n\nbody\n"))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("TLS probe unavailable") && run.stderr.contains("transport"), "\(run.stderr)")
        let methods = try Tools.messages(run.stdout).map { try Envelope.read(from: $0.header)?.method.rawValue }
        #expect(methods == ["insecure"])
    }

    @Test func aBadRecipientInAMessageIsADataError() throws {
        let config = try ProbeConfig()
        let run = try probe(["--message"], config: config, stdin: "From: a@b.test\nTo: \"x\"@[127.0.0.1]\n\nbody\n")
        #expect(run.status == 65, "\(run.stderr)")
    }
}
