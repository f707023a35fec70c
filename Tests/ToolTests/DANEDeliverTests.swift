import Foundation
import Testing
import SLMessage
import SLTestPeers

/// sl-deliver and sl-tls-probe against the DANE peers (signed zone, NSD, validating
/// Unbound, Postfix): TLS-only mail goes exactly where the probe's verdict lets it,
/// and a host with TLSA records gets nothing in plaintext or over TLS its records
/// do not authenticate.
@Suite(.serialized) struct DANEDeliverTests {
    struct Setup {
        let dir: URL
        var config: String { dir.appendingPathComponent("sl.conf").path }
        var queue: String { dir.appendingPathComponent("queue").path }
        var audit: String { dir.appendingPathComponent("audit.jsonl").path }

        init(_ extra: String = "") throws {
            let peers = try DNSSECPeers.shared.get()
            dir = try Tools.scratch()
            try (peers.configuration + "queue_directory = queue\ntransport_map = transport\n" + extra)
                .write(toFile: config, atomically: true, encoding: .utf8)
            try "".write(toFile: dir.appendingPathComponent("transport").path, atomically: true, encoding: .utf8)
        }

        func route(_ line: String) throws {
            try line.write(toFile: dir.appendingPathComponent("transport").path, atomically: true, encoding: .utf8)
        }

        func deliver(_ input: Bytes, _ args: [String] = []) throws -> ToolRun {
            try Tools.run("sl-deliver", ["--config", config, "--timeout", "20"] + args, stdin: input)
        }

        var queued: Int { ((try? FileManager.default.contentsOfDirectory(atPath: queue)) ?? []).filter { $0.hasSuffix(".eml") }.count }

        func audited() throws -> [[String: Any]] {
            try Tools.jsonLines(audit)
        }
    }

    @Test(arguments: DNSSECPeers.hosts.map(\.name))
    func tlsOnlyMailGoesExactlyWhereTheVerdictAllows(_ name: String) throws {
        let peers = try DNSSECPeers.shared.get()
        let host = DNSSECPeers.host(name)
        let setup = try Setup()
        let marker = "dane-\(name)-\(UUID().uuidString)"
        let run = try setup.deliver(DeliverToolTests.routed(to: ["bob@\(host.domain)"], tls: "required", marker: marker))
        #expect(run.status == 0, "\(run.stderr)")
        let arrived = peers.delivered(to: host, containing: marker, wait: ["dane", "verified"].contains(host.verdict) ? 10 : 1)
        let record = try #require(try setup.audited().first)
        switch host.verdict {
        case "dane", "verified":
            #expect(arrived.count == 1, "\(name): \(record)")
            #expect(arrived.first?.contains("using TLSv1.") == true)
            #expect(record["outcome"] as? String == "delivered")
            // the audit log names the TLSA record that authenticated the host
            let dane = record["dane"] as? String
            #expect((dane != nil) == (host.verdict == "dane"), "\(record)")
            if let dane, let tlsa = host.tlsa.first {
                #expect(dane.hasPrefix(tlsa.split(separator: ",").prefix(3).joined(separator: " ") + " "), "\(dane)")
            }
        case "encrypted":
            // TLS without authentication: not for TLS-only, back for a new decision
            #expect(arrived.isEmpty)
            #expect(record["outcome"] as? String == "reroute", "\(record)")
        default:
            // DANE refused the host: deferred (temporary), kept, never sent
            #expect(arrived.isEmpty)
            #expect(record["outcome"] as? String == "deferred", "\(record)")
            #expect((record["reply"] as? String)?.hasPrefix("DANE:") == true, "\(record)")
            #expect(setup.queued == 1)
        }
    }

    @Test(arguments: ["mismatch", "bogus", "taname"])
    func opportunisticMailToARefusedDANEHostIsNotSentInPlaintext(_ name: String) throws {
        let peers = try DNSSECPeers.shared.get()
        let host = DNSSECPeers.host(name)
        let setup = try Setup()
        let marker = "dane-opp-\(name)-\(UUID().uuidString)"
        let run = try setup.deliver(DeliverToolTests.routed(to: ["bob@\(host.domain)"], tls: "opportunistic", marker: marker))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(peers.delivered(to: host, containing: marker, wait: 1).isEmpty)
        #expect(try setup.audited().first?["outcome"] as? String == "deferred")
        #expect(setup.queued == 1)
    }

    @Test func opportunisticMailToADANEHostIsAuthenticatedToo() throws {
        let peers = try DNSSECPeers.shared.get()
        let setup = try Setup()
        let marker = "dane-opp-ee-\(UUID().uuidString)"
        #expect(try setup.deliver(DeliverToolTests.routed(to: ["bob@ee.dane.test"], tls: "opportunistic", marker: marker)).status == 0)
        #expect(peers.delivered(to: DNSSECPeers.host("ee"), containing: marker).count == 1)
        #expect((try setup.audited().first?["dane"] as? String)?.hasPrefix("3 1 1 ") == true)
    }

    /// RFC 8689 section 5: a message that says `TLS-Required: No` (and is not
    /// TLS-only) is not held back by a DANE failure: it goes as to a domain without
    /// DANE, while the same message without the field waits.
    @Test func tlsRequiredNoGoesPastADANEFailure() throws {
        let peers = try DNSSECPeers.shared.get()
        let host = DNSSECPeers.host("mismatch")
        let setup = try Setup()
        let marker = "dane-optout-\(UUID().uuidString)"
        let plain = String(decoding: DeliverToolTests.routed(to: ["bob@\(host.domain)"], tls: "opportunistic", marker: marker), as: UTF8.self)
        let optedOut = Array(plain.replacingOccurrences(of: "Subject: \(marker)\n", with: "Subject: \(marker)\nTLS-Required: No\n").utf8)
        let run = try setup.deliver(optedOut)
        #expect(run.status == 0, "\(run.stderr)")
        let arrived = peers.delivered(to: host, containing: marker)
        #expect(arrived.count == 1 && arrived.first?.contains("TLS-Required: No") == true)
        #expect(try setup.audited().first?["outcome"] as? String == "delivered")
        #expect(setup.queued == 0)
    }

    /// RFC 8460: with tls_reporting, a session to a DANE host is noted under the
    /// policy type tlsa with the host's records, and a refused one with its failure.
    @Test func tlsReportsNameTheTLSARecords() throws {
        let setup = try Setup("tls_reporting = yes\ntls_report_log = sessions.jsonl\n")
        #expect(try setup.deliver(DeliverToolTests.routed(to: ["bob@ee.dane.test"], tls: "opportunistic", marker: "rpt-\(UUID().uuidString)")).status == 0)
        #expect(try setup.deliver(DeliverToolTests.routed(to: ["bob@\(DNSSECPeers.host("bogus").domain)"], tls: "opportunistic",
                                              marker: "rpt-\(UUID().uuidString)")).status == 0)
        let records = try Tools.jsonLines(setup.dir.appendingPathComponent("sessions.jsonl").path)
        let ee = try #require(records.first { $0["domain"] as? String == "ee.dane.test" })
        #expect(ee["policy_type"] as? String == "tlsa" && ee["result"] as? String == "success", "\(ee)")
        #expect((ee["policy_strings"] as? [String])?.first?.hasPrefix("3 1 1 ") == true, "\(ee)")
        let bogus = try #require(records.first { $0["domain"] as? String == DNSSECPeers.host("bogus").domain })
        #expect(bogus["policy_type"] as? String == "tlsa" && bogus["result"] as? String == "dnssec-invalid", "\(bogus)")
    }

    @Test func stARTTLSStrippedAtADANEHostDefersEvenOpportunisticMail() throws {
        let peers = try DNSSECPeers.shared.get()
        let server = try BadServer(mode: "nostarttls", certs: peers.certs, port: peers.stripPort)
        let setup = try Setup()
        try setup.route("strip.dane.test smtp:[mx.strip.dane.test]:\(peers.stripPort)\n")
        let run = try withExtendedLifetime(server) {
            try setup.deliver(DeliverToolTests.routed(to: ["bob@strip.dane.test"], tls: "opportunistic", marker: "strip-\(UUID().uuidString)"))
        }
        #expect(run.status == 0, "\(run.stderr)")
        let record = try #require(try setup.audited().first)
        #expect(record["outcome"] as? String == "deferred", "\(record)")
        #expect((record["reply"] as? String)?.contains("STARTTLS not offered") == true, "\(record)")
    }

    @Test func aWrongCertificateAtADANEHostDefersTLSOnlyMail() throws {
        let peers = try DNSSECPeers.shared.get()
        let server = try BadServer(mode: "ok", certs: peers.certs, port: peers.wrongCertPort)
        let setup = try Setup()
        try setup.route("wrongcert.dane.test smtp:[mx.wrongcert.dane.test]:\(peers.wrongCertPort)\n")
        let run = try withExtendedLifetime(server) {
            try setup.deliver(DeliverToolTests.routed(to: ["bob@wrongcert.dane.test"], tls: "required", marker: "wrong-\(UUID().uuidString)"))
        }
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try setup.audited().first?["outcome"] as? String == "deferred")
    }

    @Test func withoutATrustedResolverThereIsNoDANE() throws {
        // The same Unbound as a plain DNS server: ee's self-signed certificate is
        // then judged by WebPKI, and mismatch's WebPKI certificate passes.
        let peers = try DNSSECPeers.shared.get()
        let setup = try Setup()
        let plain = peers.configuration.replacingOccurrences(of: "dnssec_resolver", with: "dns_server")
        try (plain + "queue_directory = queue\n").write(toFile: setup.config, atomically: true, encoding: .utf8)
        let marker = "nodane-\(UUID().uuidString)"
        #expect(try setup.deliver(DeliverToolTests.routed(to: ["bob@ee.dane.test"], tls: "required", marker: marker)).status == 0)
        #expect(try setup.audited().first?["outcome"] as? String == "reroute")
        let probe = try Tools.run("sl-tls-probe", ["--config", setup.config, "--json", "ee.dane.test"], stdin: [])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(probe.stdout)) as? [String: Any])
        #expect(json["verdict"] as? String == "encrypted")
        #expect(probe.stdoutText.contains("no trusted DNSSEC resolver"), "\(probe.stdoutText)")
    }

    /// tls_min_verdict = dane end to end: sl-classify probes (live, through the
    /// trusted resolver), routes with X-SL-TLS: dane, sl-deliver needs DANE.
    @Test func tlsMinVerdictDaneFromClassifyToDelivery() throws {
        let peers = try DNSSECPeers.shared.get()
        let setup = try Setup("tls_only = yes\ntls_min_verdict = dane\nask_sender = no\nfallback = insecure\n")
        let marker = "e2e-\(UUID().uuidString)"
        let message = bytes("""
        From: Alice <alice@clinic.test>
        To: bob@ee.dane.test, carol@plain.dane.test
        Subject: \(marker)
        Date: Mon, 30 Nov 2026 09:00:00 +0000
        Message-ID: <\(marker)@clinic.test>

        Hello.

        """)
        let classified = try Tools.run("sl-classify", ["--config", setup.config, "-f", "alice@clinic.test", "-t"], stdin: message)
        #expect(classified.status == 0, "\(classified.stderr)")
        let routed = classified.stdoutText
        #expect(routed.contains("X-SL-TLS: dane"), "\(routed)")
        #expect(routed.contains("X-SL-Envelope-To: bob@ee.dane.test"))
        let run = try setup.deliver(classified.stdout)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(peers.delivered(to: DNSSECPeers.host("ee"), containing: marker).count == 1)
        // plain.dane.test is only verified: not TLS-only under dane, so insecure (fallback)
        // and sent opportunistically (with WebPKI-verified TLS, as it happens)
        let records = try setup.audited().filter { $0["tool"] as? String == "sl-deliver" }
        #expect(records.count == 2, "\(records)")
        #expect(records.allSatisfy { $0["outcome"] as? String == "delivered" }, "\(records)")

        // A copy routed for DANE to a host that has only WebPKI goes back for a new decision.
        let setup2 = try Setup()
        let again = try setup2.deliver(DeliverToolTests.routed(to: ["carol@plain.dane.test"], tls: "dane", marker: "\(marker)-2"))
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try setup2.audited().first?["outcome"] as? String == "reroute")
        #expect((try setup2.audited().first?["reply"] as? String)?.contains("(dane-required)") == true)
        #expect(peers.delivered(to: DNSSECPeers.host("plain"), containing: "\(marker)-2", wait: 1).isEmpty)
    }
}
