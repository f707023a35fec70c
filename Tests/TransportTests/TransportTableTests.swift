import Testing
import SLTransport

@Suite struct TransportTableTests {
    @Test(arguments: [
        ("smtp:[127.0.0.1]:2525", NextHop(host: "127.0.0.1", port: 2525, lookupMX: false)),
        ("smtp:[mx.Example.org]", NextHop(host: "mx.example.org", port: nil, lookupMX: false)),
        ("smtp:relay.example.net:587", NextHop(host: "relay.example.net", port: 587, lookupMX: true)),
        ("smtp:relay.example.net", NextHop(host: "relay.example.net", port: nil, lookupMX: true)),
        ("smtp:[::1]:25", NextHop(host: "::1", port: 25, lookupMX: false)),
    ])
    func parsesNextHops(text: String, expected: NextHop) throws {
        #expect(try NextHop(parsing: text) == expected)
    }

    @Test(arguments: [
        "relay.example.net",            // no smtp:
        "smtp:",                        // no host
        "smtp:[127.0.0.1",              // unclosed bracket
        "smtp:[127.0.0.1]:0",           // port 0
        "smtp:[127.0.0.1]:70000",       // port too large
        "smtp:host:port",               // port not a number
        "smtp:bad_host!",               // not a host name
        "smtp:[not an address]",
        "smtp:[127.0.0.1]x",            // junk after the bracket
        "smtp:" + String(repeating: "a", count: 300),
        "lmtp:unix:/var/run/x",         // another transport: not ours
    ])
    func refusesBadNextHops(text: String) {
        #expect(throws: TransportTableError.self) { try NextHop(parsing: text) }
    }

    @Test func routesExactThenParentThenWildcard() throws {
        let table = try TransportTable(text: """
            # tests and relays
            example.org       smtp:[127.0.0.1]:2525
            .example.org      smtp:[127.0.0.2]:2526   # subdomains only
            deep.sub.example.org smtp:[127.0.0.3]
            *                 smtp:smarthost.example.net

            """)
        #expect(table.route(for: "example.org")?.host == "127.0.0.1")
        #expect(table.route(for: "a.example.org")?.host == "127.0.0.2")
        #expect(table.route(for: "x.sub.example.org")?.host == "127.0.0.2")
        #expect(table.route(for: "deep.sub.example.org")?.host == "127.0.0.3")
        #expect(table.route(for: "other.net")?.host == "smarthost.example.net")
        #expect(table.route(for: "notexample.org")?.host == "smarthost.example.net")
    }

    @Test func noWildcardMeansNoRoute() throws {
        let table = try TransportTable(text: "example.org smtp:[127.0.0.1]\n")
        #expect(table.route(for: "example.net") == nil)
        #expect(table.route(for: "sub.example.org") == nil)   // "example.org" is that domain only
    }

    @Test(arguments: [
        ("example.org\n", 1),
        ("ok.example smtp:[127.0.0.1]\nexample.org smtp:[127.0.0.1] extra\n", 2),
        ("\n\nbad!domain smtp:[127.0.0.1]\n", 3),
        ("example.org relay:[127.0.0.1]\n", 1),
    ])
    func reportsTheBadLine(text: String, line: Int) {
        do {
            _ = try TransportTable(text: text)
            Issue.record("accepted \(text.debugDescription)")
        } catch {
            #expect("\(error)".contains("line \(line)") || "\(error)".hasPrefix("\(line):"), "\(error)")
        }
    }
}
