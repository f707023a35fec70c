import Foundation
import Testing
import SLPolicy
import SLTestPeers
@testable import SLTransport

/// MTA-STS against real parts on loopback: nginx serving the policies (one with
/// an untrusted certificate, one with the wrong media type, a redirect, a huge
/// one), dnsmasq serving the `_mta-sts` TXT records and the policy hosts'
/// addresses, and the real Postfix MX hosts of `Peers` (verified TLS, untrusted
/// certificate, no TLS).
@Suite struct MTASTSTests {
    static func options(dns: String? = nil, cache: String? = nil) throws -> ProbeOptions {
        let sts = try MTASTSPeers.shared.get()
        var o = ProbeOptions()
        o.dnsServer = try DNSServer(parsing: dns ?? sts.dnsServer)
        o.port = sts.peers.smtpPort
        o.caFile = sts.trustFile
        o.heloName = "client.test"
        o.domainTimeout = 20
        o.operationTimeout = 10
        o.mtaSTS.port = sts.httpsPort
        o.mtaSTS.cachePath = cache
        o.mtaSTS.timeout = 10
        return o
    }

    static func probe(_ domain: String, dns: String? = nil, cache: String? = nil) throws -> DomainProbe {
        let o = try options(dns: dns, cache: cache)
        return try TLSProber(options: o).probe(domain, resolver: o.makeResolver())
    }

    @Test(arguments: MTASTSPeers.domains.map(\.name))
    func verdictPerPolicy(_ name: String) throws {
        let d = MTASTSPeers.domain(name)
        let r = try Self.probe(name)
        #expect(r.verdict.rawValue == d.verdict, "\(r)")
        #expect(r.result?.rawValue == d.result, "\(r)")
        let sts = try #require(r.mtaSTS, "no MTA-STS evidence: \(r)")
        #expect(sts.mode?.rawValue == d.mode, "\(sts)")
        #expect(sts.result?.rawValue == d.problem, "\(sts)")
        #expect(!sts.cached)
        if d.mode != nil {
            #expect(sts.id == d.id)
        }
        if d.mode == "enforce" || d.mode == "testing" {
            // Evidence names the patterns; a refused host is listed.
            #expect(sts.mx?.isEmpty == false)
            #expect((sts.failures != nil) == (d.result != nil), "\(sts)")
        }
        if d.mode == "enforce", d.verdict != "verified" {
            #expect(r.reason?.contains("MTA-STS policy (enforce) refuses \(d.mx)") == true, "\(r.reason ?? "")")
        }
    }

    /// Without a policy the same MX hosts are judged by WebPKI alone: the policy is
    /// what makes mismatch.sts.test not verified (and the probe agrees with itself
    /// for on.test, which has a TXT record but no policy host).
    @Test func thePolicyIsWhatDecides() throws {
        let plainMX = try Self.probe("on.test", dns: try Peers.shared.get().dnsServer)
        #expect(plainMX.verdict == .verified)
        #expect(plainMX.mtaSTS?.result == .stsPolicyFetchError, "\(String(describing: plainMX.mtaSTS))")
        let routed = try TransportTable(text: "mismatch.sts.test smtp:mx.on.test\n")
        var o = try Self.options()
        o.transport = routed
        let r = try TLSProber(options: o).probe("mismatch.sts.test", resolver: o.makeResolver())
        #expect(r.verdict == .verified, "a transport-table route is not judged by the domain's policy: \(r)")
        #expect(r.mtaSTS == nil)
    }

    /// RFC 8461 5.1 and 3.3: the policy is fetched again only when the TXT id
    /// changes; a failed fetch keeps the unexpired cached policy; only a fetched
    /// policy replaces a cached one; `none` withdraws enforce; an expired policy
    /// is gone.
    @Test func cacheFollowsTheTXTId() throws {
        let sts = try MTASTSPeers.shared.get()
        let domain = "change.sts.test"
        let dir = NSTemporaryDirectory() + "/sl-sts-change-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cache = dir + "/mta-sts.json"
        let file = sts.policyFile(domain)
        func records(_ id: String?) -> [String] { MTASTSPeers.records([(domain, "mx.on.test", id)]) }
        let dns = try MTASTSPeers.DNS(dir: dir + "/dns", records: records("c1"))
        defer { dns.stop() }
        func probe() throws -> DomainProbe { try Self.probe(domain, dns: dns.server, cache: cache) }

        try "version: STSv1\nmode: enforce\nmx: mx.on.test\nmax_age: 3600\n".write(toFile: file, atomically: true, encoding: .utf8)
        var r = try probe()
        #expect(r.verdict == .verified && r.mtaSTS?.mode == .enforce && r.mtaSTS?.cached == false, "\(r)")
        #expect(try STSCacheFile(path: cache).entries[domain]?.id == "c1")

        // The server's policy changes, the id does not: the cached policy stands.
        try "version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 3600\n".write(toFile: file, atomically: true, encoding: .utf8)
        r = try probe()
        #expect(r.verdict == .verified && r.mtaSTS?.cached == true && r.mtaSTS?.id == "c1", "\(r)")

        // A new id: fetched again, and the new policy refuses the MX host.
        try dns.restart(records("c2"))
        r = try probe()
        #expect(r.verdict == .encrypted && r.result == .validationFailure && r.mtaSTS?.cached == false && r.mtaSTS?.id == "c2", "\(r)")
        #expect(try STSCacheFile(path: cache).entries[domain]?.policy.mx == ["mx.elsewhere.test"])

        // Another id, but the fetch fails: the cached policy (c2) stays in force.
        try FileManager.default.removeItem(atPath: file)
        try dns.restart(records("c3"))
        r = try probe()
        #expect(r.verdict == .encrypted && r.mtaSTS?.cached == true && r.mtaSTS?.id == "c2", "\(r)")
        #expect(r.mtaSTS?.result == .stsPolicyFetchError)
        #expect(try STSCacheFile(path: cache).entries[domain]?.id == "c2")

        // The TXT record disappears: still the cached policy, until it expires.
        try dns.restart(records(nil))
        r = try probe()
        #expect(r.verdict == .encrypted && r.mtaSTS?.cached == true, "\(r)")
        let o = try Self.options(dns: dns.server, cache: cache)
        let policies = MTASTSPolicies(options: o.mtaSTS, caFile: o.caFile)
        let later = Date().timeIntervalSince1970 + 3_700
        #expect(policies.lookup(domain, resolver: try o.makeResolver(), now: later).policy == nil)

        // mode none, fetched under a new id, withdraws enforce.
        try "version: STSv1\nmode: none\nmax_age: 3600\n".write(toFile: file, atomically: true, encoding: .utf8)
        try dns.restart(records("c4"))
        r = try probe()
        #expect(r.verdict == .verified && r.mtaSTS?.mode == STSPolicy.Mode.none && r.mtaSTS?.id == "c4", "\(r)")

        // One run (sl-deliver's) reuses a domain's answer for a minute, however
        // many connections and rounds ask; after that it looks again.
        let run = MTASTSPolicies(options: o.mtaSTS, caFile: o.caFile)
        let now = Date().timeIntervalSince1970
        #expect(run.lookup(domain, resolver: try o.makeResolver(), now: now).id == "c4")
        try dns.restart(records("c5"))
        #expect(run.lookup(domain, resolver: try o.makeResolver(), now: now + 30).id == "c4")
        #expect(run.lookup(domain, resolver: try o.makeResolver(), now: now + 61).id == "c5")
    }

    /// The TLS cache entry and the finding sl-classify logs carry the evidence.
    @Test func evidenceReachesTheTLSCache() throws {
        let r = try Self.probe("mismatch.sts.test")
        let entry = r.cacheEntry(ttl: 3600)
        let line = try #require(entry.mtaSTS)
        #expect(line.contains("MTA-STS enforce id=m1 mx=mx.elsewhere.test,*.mx.on.test"), "\(line)")
        #expect(line.contains("refuses mx.on.test"), "\(line)")
        let data = try TLSCacheFile.encode(["mismatch.sts.test": entry])
        #expect(String(decoding: data, as: UTF8.self).contains("\"mta_sts\""))
    }
}
