import Foundation
import Testing
import SLPolicy
import SLTestPeers
@testable import SLTransport

/// DANE (RFC 7672) against the real parts: a zone signed at start-up, NSD, a
/// validating Unbound and Postfix with each kind of certificate (DNSSECPeers).
@Suite(.serialized) struct DANETests {
    func options(trusted: Bool = true) throws -> (ProbeOptions, DNSSECPeers) {
        let peers = try DNSSECPeers.shared.get()
        var o = ProbeOptions()
        if trusted { o.dnssecResolver = try DNSServer(parsing: peers.resolver) } else { o.dnsServer = try DNSServer(parsing: peers.resolver) }
        o.port = peers.smtpPort
        o.caFile = peers.caFile
        o.heloName = "client.test"
        o.domainTimeout = 20
        return (o, peers)
    }

    func probe(_ domain: String, trusted: Bool = true, transport: String? = nil) throws -> DomainProbe {
        var (o, _) = try options(trusted: trusted)
        if let transport { o.transport = try TransportTable(text: transport) }
        return try TLSProber(options: o).probe(domain, resolver: o.makeResolver())
    }

    @Test(arguments: DNSSECPeers.hosts.map(\.name))
    func eachHostGetsTheVerdictItsTLSARecordsCallFor(_ name: String) throws {
        let host = DNSSECPeers.host(name)
        let r = try probe(host.domain)
        #expect(r.verdict.rawValue == host.verdict, "\(name): \(r.reason ?? "")")
        #expect(r.result?.rawValue == host.result, "\(name): \(r.result?.rawValue ?? "nil") \(r.reason ?? "")")
        let h = try #require(r.hosts.first)
        if host.verdict == "dane" {
            // The evidence names the record that matched, from a validated answer.
            let match = try #require(h.tls?.dane)
            let spec = host.tlsa[0].split(separator: ",").prefix(3).compactMap { UInt8($0) }
            #expect([match.usage, match.selector, match.matchingType] == spec)
            #expect(h.dane?.policy == "authenticate" && h.dane?.secure == true)
            #expect(h.dane?.tlsa.first?.hasPrefix(spec.map(String.init).joined(separator: " ")) == true)
        } else {
            #expect(h.tls?.dane == nil)
        }
    }

    @Test func anUntrustedResolverGivesNoDANEEvenForTheSignedZone() throws {
        // The same Unbound, named as a plain DNS server: its AD bit means nothing.
        let r = try probe(DNSSECPeers.host("ee").domain, trusted: false)
        #expect(r.verdict == .encrypted)       // self-signed: WebPKI cannot verify it
        let evidence = try #require(r.hosts.first?.dane)
        #expect(evidence.policy == "not-applicable")
        #expect(evidence.note?.contains("no trusted DNSSEC resolver") == true)
        // and a TLSA mismatch it cannot see leaves the WebPKI verdict
        #expect(try probe(DNSSECPeers.host("mismatch").domain, trusted: false).verdict == .verified)
    }

    @Test func theResolverReadsTheADBitOnlyWhenTrusted() throws {
        let peers = try DNSSECPeers.shared.get()
        let server = try DNSServer(parsing: peers.resolver)
        let trusted = try DNSResolver(server: server, validating: true)
        let plain = try DNSResolver(server: server)
        #expect(try trusted.securedMX("ee.dane.test").secure)
        #expect(try !plain.securedMX("ee.dane.test").secure)
        #expect(try trusted.securedAddresses("mx.ee.dane.test") == (["127.0.0.11"], true))
        // NODATA in a signed zone is a validated denial too
        #expect(try trusted.securedMX("mx.ee.dane.test").secure)
        let port = peers.smtpPort
        guard case .secure(let records) = trusted.tlsa(host: "mx.ee.dane.test", port: port) else {
            Issue.record("no secure TLSA RRset"); return
        }
        #expect(records.count == 1 && records[0].usage == 3 && records[0].data.count == 32)
        guard case .failed = trusted.tlsa(host: "mx.bogus.dane.test", port: port) else {
            Issue.record("a bogus TLSA RRset must fail the lookup"); return
        }
        guard case .absent = trusted.tlsa(host: "mx.plain.dane.test", port: port) else {
            Issue.record("no TLSA at plain"); return
        }
        guard case .absent = plain.tlsa(host: "mx.ee.dane.test", port: port) else {
            Issue.record("records from an untrusted resolver must not count"); return
        }
    }

    // EAST-style attacks with DANE in place (scripted servers at the ports the
    // TLSA records name): they still fail closed.

    @Test func stARTTLSStrippedFromADANEHostIsRefused() throws {
        let peers = try DNSSECPeers.shared.get()
        let server = try BadServer(mode: "nostarttls", certs: peers.certs, port: peers.stripPort)
        let r = try withExtendedLifetime(server) {
            try probe("strip.dane.test", transport: "strip.dane.test smtp:[mx.strip.dane.test]:\(peers.stripPort)\n")
        }
        #expect(r.verdict == .none)
        #expect(r.result == .starttlsNotSupported)
        #expect(r.hosts.first?.dane?.policy == "authenticate")
    }

    @Test func aCertificateTheTLSARecordsDoNotNameIsRefused() throws {
        let peers = try DNSSECPeers.shared.get()
        // good.pem would pass WebPKI for its names; the TLSA record names daneee.pem.
        let server = try BadServer(mode: "ok", certs: peers.certs, port: peers.wrongCertPort)
        let r = try withExtendedLifetime(server) {
            try probe("wrongcert.dane.test", transport: "wrongcert.dane.test smtp:[mx.wrongcert.dane.test]:\(peers.wrongCertPort)\n")
        }
        #expect(r.verdict == .none)
        #expect(r.result == .tlsaInvalid, "\(r.reason ?? "")")
    }

    @Test func theDomainIsAsGoodAsItsWorstHost() throws {
        let both = try probe("both.dane.test")
        #expect(both.verdict == .dane)
        #expect(both.hosts.count == 2 && both.hosts.allSatisfy { $0.tls?.dane != nil })
        // a DANE host beside one without TLSA records: the WebPKI one decides
        #expect(try probe("mixed.dane.test").verdict == .verified)
        let plain = try probe("plain.dane.test")
        #expect(plain.verdict == .verified)
        #expect(plain.hosts.first?.dane?.note?.contains("no TLSA records") == true)
    }
}
