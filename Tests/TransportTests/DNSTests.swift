import Foundation
import Testing
import SLTestPeers
@testable import SLTransport

/// DNS through libresolv against a real dnsmasq on loopback.
@Suite struct DNSTests {
    func resolver(timeout: Int = 2) throws -> DNSResolver {
        let peers = try Peers.shared.get()
        return try DNSResolver(server: DNSServer(parsing: peers.dnsServer), timeout: timeout, attempts: 1)
    }

    @Test func mxInPreferenceOrder() throws {
        #expect(try resolver().mx("order.test") == .hosts([
            MXHost(preference: 10, name: "a.order.test"),
            MXHost(preference: 20, name: "b.order.test"),
            MXHost(preference: 30, name: "c.order.test"),
        ]))
    }

    @Test func implicitMXWhenTheNameHasOnlyAnAddress() throws {
        #expect(try resolver().mx("implicit.test") == .implicit)
        #expect(try resolver().addresses("implicit.test") == ["127.0.0.2"])
    }

    @Test func nullMX() throws {
        #expect(try resolver().mx("nullmx.test") == .nullMX)
    }

    @Test func noSuchDomain() throws {
        #expect(throws: DNSError.noSuchDomain("nothere.test")) { try resolver().mx("nothere.test") }
    }

    @Test func txtRecordsJoinTheirCharacterStrings() throws {
        #expect(try resolver().txt("_mta-sts.on.test") == ["v=STSv1; id=20261130"])
        #expect(try resolver().txt("mx.on.test") == nil)
        #expect(throws: DNSError.noSuchDomain("_smtp._tls.nothere.test")) { try resolver().txt("_smtp._tls.nothere.test") }
    }

    @Test func ipv4ThenIPv6Addresses() throws {
        #expect(try resolver().addresses("b.order.test") == ["127.0.0.3", "::1"])
    }

    @Test(arguments: ["", "a..b", "-a.test", "a b.test", "a\r\nb.test", "x@y.test", String(repeating: "a", count: 64) + ".test",
                      String(repeating: "abc.", count: 70) + "test"])
    func refusesNonHostNamesBeforeAsking(name: String) throws {
        #expect(throws: DNSError.self) { try resolver().mx(name) }
    }

    /// A server that never answers: a temporary failure, in about the time allowed.
    @Test func silentServerIsTemporaryAndBounded() throws {
        // A UDP socket that is bound but never read: queries vanish.
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) + getsockname(fd, $0, &len) } }
        let r = try DNSResolver(server: DNSServer(parsing: "127.0.0.1:\(UInt16(bigEndian: sa.sin_port))"), timeout: 1, attempts: 1)
        let start = Date()
        #expect(throws: DNSError.temporary("on.test")) { try r.mx("on.test") }
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test(arguments: ["127.0.0.1", "127.0.0.1:5353", "10.0.0.1:53"])
    func parsesServers(text: String) throws {
        _ = try DNSServer(parsing: text)
    }

    @Test(arguments: ["", "localhost", "::1", "127.0.0.1:0", "127.0.0.1:x", "127.0.0.1:70000", "1.2.3.4:5:6"])
    func refusesBadServers(text: String) {
        #expect(throws: DNSError.self) { try DNSServer(parsing: text) }
    }
}
