import Foundation
import Testing
import SLPolicy
import SLTestPeers
@testable import SLTransport

/// The probe against real Postfix smtpd instances (TLS on, off, expired, wrong
/// name, self-signed) found through a real dnsmasq.
@Suite struct ProbeTests {
    static func prober(timeout: Double = 20, transport: TransportTable = TransportTable()) throws -> (TLSProber, DNSResolver) {
        let peers = try Peers.shared.get()
        var o = ProbeOptions()
        o.dnsServer = try DNSServer(parsing: peers.dnsServer)
        o.port = peers.smtpPort
        o.caFile = peers.caFile
        o.heloName = "client.test"
        o.domainTimeout = timeout
        o.operationTimeout = min(timeout, 10)
        o.transport = transport
        let p = try TLSProber(options: o)
        return (p, try o.makeResolver())
    }

    @Test(arguments: Peers.servers.map(\.domain))
    func verdictPerServer(domain: String) throws {
        let server = Peers.servers.first { $0.domain == domain }!
        let (prober, resolver) = try Self.prober()
        let r = prober.probe(domain, resolver: resolver)
        #expect(r.verdict.rawValue == server.verdict, "\(r)")
        #expect(r.result?.rawValue == server.result, "\(r)")
        #expect(r.hosts.count == 1)
        let host = try #require(r.hosts.first)
        #expect(host.host == server.mxHost)
        #expect(host.address == server.address)
        #expect(host.banner?.contains(server.mxHost) == true, "\(host)")
        #expect(host.esmtp)
        if server.tls == "off" {
            #expect(!host.starttls)
            #expect(host.tls == nil)
        } else {
            let tls = try #require(host.tls)
            #expect(tls.protocolVersion.hasPrefix("TLSv1."))
            #expect(tls.modernProtocol)
            #expect(!tls.cipher.isEmpty)
            #expect(tls.chain.first?.sha256.count == 95)    // 32 bytes as XX:XX:...
            #expect(tls.verified == (server.verdict == "verified"))
        }
    }

    /// What posttls-finger (Postfix's own TLS client) reports for the same server,
    /// mapped to our vocabulary: Verified -> verified; Trusted, Untrusted or
    /// Anonymous -> encrypted; no TLS -> none.
    @Test(arguments: Peers.servers.map(\.domain))
    func agreesWithPosttlsFinger(domain: String) throws {
        let peers = try Peers.shared.get()
        let server = Peers.servers.first { $0.domain == domain }!
        // posttls-finger reads main.cf (MAIL_CONFIG) and reports on stderr.
        let output = try Peers.run(["sh", "-c", "MAIL_CONFIG='\(peers.configDirectory(server))' posttls-finger -c -l secure"
                                    + " -F '\(peers.caFile)' '[\(server.address)]:\(peers.smtpPort)' \(server.mxHost) 2>&1"])
        let theirs: String
        if output.contains("Verified TLS connection established") {
            theirs = "verified"
        } else if output.contains("Trusted TLS connection established") || output.contains("Untrusted TLS connection established")
                    || output.contains("Anonymous TLS connection established") {
            theirs = "encrypted"
        } else {
            theirs = "none"
        }
        let (prober, resolver) = try Self.prober()
        #expect(prober.probe(domain, resolver: resolver).verdict.rawValue == theirs, "posttls-finger said:\n\(output)")
    }

    @Test func theWorstHostInUseDecides() throws {
        let (prober, resolver) = try Self.prober()
        let r = prober.probe("mixed.test", resolver: resolver)
        #expect(r.verdict == .none)
        #expect(r.hosts.map(\.verdict) == [.verified, .none])
        #expect(r.reason?.hasPrefix("mx.off.test:") == true)
    }

    @Test func aBackupThatDoesNotAnswerIsNotInUse() throws {
        let (prober, resolver) = try Self.prober()
        let r = prober.probe("backupdown.test", resolver: resolver)
        #expect(r.verdict == .verified)
        #expect(r.hosts.map(\.verdict) == [.verified, .unreachable])
        #expect(r.hosts[1].reason?.contains("refused") == true)
    }

    @Test func unreachableDomains() throws {
        let (prober, resolver) = try Self.prober()
        let cases: [(String, String)] = [
            ("down.test", "refused"), ("nothere.test", "no such domain"), ("nullmx.test", "null MX"),
        ]
        for (domain, why) in cases {
            let r = prober.probe(domain, resolver: resolver)
            #expect(r.verdict == .unreachable, "\(domain)")
            #expect(r.reason?.contains(why) == true, "\(domain): \(r.reason ?? "no reason")")
        }
    }

    @Test func implicitMXIsProbed() throws {
        let (prober, resolver) = try Self.prober()
        let r = prober.probe("implicit.test", resolver: resolver)
        #expect(r.hosts.map(\.host) == ["implicit.test"])
        // The certificate names mx.on.test, not implicit.test.
        #expect(r.verdict == .encrypted)
        #expect(r.result == .certificateHostMismatch)
    }

    @Test func transportTableOverridesMX() throws {
        let peers = try Peers.shared.get()
        // off.test's mail goes to the TLS-on server by name: verified for mx.on.test.
        let table = try TransportTable(text: "off.test smtp:[mx.on.test]:\(peers.smtpPort)\n")
        let (prober, resolver) = try Self.prober(transport: table)
        let r = prober.probe("off.test", resolver: resolver)
        #expect(r.verdict == .verified, "\(r)")
        #expect(r.hosts.first?.address == "127.0.0.2")
    }

    @Test func probesManyDomainsConcurrentlyInOrder() throws {
        let (prober, _) = try Self.prober()
        let domains = Peers.servers.map(\.domain) + ["mixed.test", "nothere.test"]
        let seen = Counter()
        let results = try prober.probeAll(domains, concurrency: 4) { done, total, _ in
            seen.add()
            #expect(done <= total)
        }
        #expect(results.map(\.domain) == domains)
        #expect(results.map(\.verdict.rawValue) == Peers.servers.map(\.verdict) + ["none", "unreachable"])
        #expect(seen.value == domains.count)
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
