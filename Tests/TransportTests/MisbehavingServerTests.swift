import Foundation
import Testing
import SLPolicy
import SLTestPeers
@testable import SLTransport

/// Servers that break the protocol, played by peers.py badserver: a scripted
/// stand-in, because no real server misbehaves on purpose.
@Suite struct MisbehavingServerTests {
    /// Probes `bad.test`, routed by the transport table to a bad server in `mode`.
    func probe(_ mode: String, timeout: Double = 4) throws -> DomainProbe {
        let peers = try Peers.shared.get()
        let server = try BadServer(mode: mode, certs: peers.certs)
        var o = ProbeOptions()
        o.dnsServer = try DNSServer(parsing: peers.dnsServer)
        o.caFile = peers.caFile
        o.domainTimeout = timeout
        o.operationTimeout = timeout
        o.transport = try TransportTable(text: "bad.test smtp:[\(server.address)]:\(server.port)\n")
        let prober = try TLSProber(options: o)
        return withExtendedLifetime(server) { prober.probe("bad.test", resolver: try! o.makeResolver()) }
    }

    @Test func stARTTLSResponseInjectionDropsTheConnection() throws {
        let r = try probe("injection")
        #expect(r.verdict == .none)
        #expect(r.hosts.first?.tls == nil)        // no handshake was attempted
        #expect(r.reason?.contains("response injection") == true, "\(r.reason ?? "")")
    }

    @Test func stARTTLSMissingFromEHLO() throws {
        let r = try probe("nostarttls")
        #expect(r.verdict == .none)
        #expect(r.result == .starttlsNotSupported)
        #expect(r.hosts.first?.esmtp == true)
        #expect(r.hosts.first?.starttls == false)
    }

    @Test func garbageBanner() throws {
        let r = try probe("garbage")
        #expect(r.verdict == .unreachable)
        #expect(r.reason?.contains("not SMTP") == true, "\(r.reason ?? "")")
        // whatever the server sent is printable in the reason
        #expect(r.reason?.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F } == true)
    }

    @Test func aServerThatNeverAnswersCostsTheTimeLimitOnly() throws {
        let start = Date()
        let r = try probe("silent", timeout: 2)
        #expect(r.verdict == .unreachable)
        #expect(r.reason?.contains("timed out") == true, "\(r.reason ?? "")")
        #expect(Date().timeIntervalSince(start) < 6)
    }

    @Test func aServerThatStallsInTheHandshake() throws {
        let start = Date()
        let r = try probe("stall-handshake", timeout: 2)
        #expect(r.verdict == .none)
        #expect(r.hosts.first?.starttls == true)
        #expect(r.reason?.contains("timed out") == true, "\(r.reason ?? "")")
        #expect(Date().timeIntervalSince(start) < 6)
    }
}
