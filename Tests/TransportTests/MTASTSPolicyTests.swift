import Foundation
import Testing
import SLMessage
@testable import SLTransport

/// RFC 8461's TXT record and policy grammar, and its MX pattern rule, without a
/// network: bytes in, a record, a policy or a refusal out. Policies and records
/// come from the network; each malformed case here must be refused.
@Suite struct MTASTSPolicyTests {
    func bytes(_ s: String) -> Bytes { Array(s.utf8) }

    // MARK: the _mta-sts TXT record (3.1)

    @Test(arguments: [
        ("v=STSv1; id=20160831085700Z;", "20160831085700Z"),
        ("v=STSv1; id=1", "1"),
        ("v=STSv1;id=abcDEF123", "abcDEF123"),
        ("v=STSv1; \tid=x1 ;", "x1"),
        ("v=STSv1; ext=val-ue; id=9", "9"),
        ("v=STSv1; id=" + String(repeating: "a", count: 32), String(repeating: "a", count: 32)),
    ])
    func recordsThatParse(_ text: String, _ id: String) {
        #expect(STSRecord(parsing: text)?.id == id, "\(text)")
    }

    @Test(arguments: [
        "", "v=STSv1", "v=STSv1;", "v=STSv1; ", "v=STSv2; id=1", "V=STSv1; id=1", "v=STSv1 id=1",
        "v=STSv1; id=", "v=STSv1; id=a-b", "v=STSv1; id=a b", "v=STSv1; id=" + String(repeating: "a", count: 33),
        "v=STSv1; id=1; id=2", "v=STSv1; ext=; id=1", "v=STSv1; =x; id=1", "v=STSv1; id=1;;",
        "v=STSv1; id=1\u{0}", "v=STSv1; id=é", "id=1; v=STSv1", "v=STSv1; ext=a=b; id=1",
        "v=STSv1; id=1" + String(repeating: "; x=y", count: 300),
    ])
    func recordsThatDoNot(_ text: String) {
        #expect(STSRecord(parsing: text) == nil, "\(text)")
    }

    /// Records not beginning with "v=STSv1;" are not ours; of the rest, exactly one.
    @Test func discoveryAmongTXTRecords() {
        #expect(STSRecord.discover(in: ["v=spf1 -all", "v=STSv1; id=7"])?.id == "7")
        #expect(STSRecord.discover(in: ["v=STSv1; id=7", "v=STSv1; id=8"]) == nil)
        #expect(STSRecord.discover(in: ["v=STSv1; id=7", "v=STSv1; broken"]) == nil)
        #expect(STSRecord.discover(in: ["v=STSv1 ; id=7"]) == nil)
        #expect(STSRecord.discover(in: []) == nil)
    }

    // MARK: the policy (3.2)

    static let good = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n"

    @Test func theRFCsExample() throws {
        let p = try STSPolicy(parsing: bytes(Self.good))
        #expect(p.mode == .enforce)
        #expect(p.mx == ["mail.example.com", "*.example.net", "backupmx.example.com"])
        #expect(p.maxAge == 604_800)
    }

    @Test(arguments: [
        // CRLF, no final line end, spaces and tabs around values, extensions, case of mx
        ("version: STSv1\r\nmode: testing\r\nmx: MX.Example.ORG\r\nmax_age: 86400", STSPolicy.Mode.testing, ["mx.example.org"], 86_400),
        ("version:STSv1\nmode:\tenforce \nmx:  mx.example.org\t\nmax_age: 31557600\n", .enforce, ["mx.example.org"], 31_557_600),
        ("mode: none\nversion: STSv1\nmax_age: 0\n", .none, [], 0),
        ("version: STSv1\nmode: enforce\nfoo_bar: any value here\nmx: a.example\nmax_age: 1\n", .enforce, ["a.example"], 1),
    ])
    func policiesThatParse(_ text: String, _ mode: STSPolicy.Mode, _ mx: [String], _ age: Int) throws {
        let p = try STSPolicy(parsing: bytes(text))
        #expect(p.mode == mode && p.mx == mx && p.maxAge == age)
    }

    @Test(arguments: [
        ("", "empty"),
        ("version: STSv1\nmode: enforce\nmx: a.example\n", "no max_age"),
        ("version: STSv1\nmx: a.example\nmax_age: 1\n", "no mode"),
        ("mode: enforce\nmx: a.example\nmax_age: 1\n", "no version"),
        ("version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx"),
        ("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "not STSv1"),
        ("version: stsv1\nmode: enforce\nmx: a.example\nmax_age: 1\n", "not STSv1"),
        ("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n", "mode is not"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 99999999999\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1e5\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 1\n", "twice"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nmax_age: 2\n", "twice"),
        ("version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n", "mx"),
        ("version: STSv1\nmode: enforce\nmx: mx*.example\nmax_age: 1\n", "mx"),
        ("version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n", "mx"),
        ("version: STSv1\nmode: enforce\nmx: example\nmax_age: 1\n", "mx"),
        ("version: STSv1\nmode: enforce\nmx: a.example.\nmax_age: 1\n", "mx"),
        ("version: STSv1\nmode: enforce\nmx: a_b.example\nmax_age: 1\n", "mx"),
        ("version: STSv1\nmode: enforce\nmx: a.example b.example\nmax_age: 1\n", "mx"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n\n", "line 5"),
        ("version: STSv1\nmode: enforce\nthis line has no colon\nmx: a.example\nmax_age: 1\n", "line 3"),
        ("version: STSv1\nmode: enforce\n: empty key\nmx: a.example\nmax_age: 1\n", "line 3"),
        ("version: STSv1\nmode: enforce\nmx:\nmax_age: 1\n", "line 3"),
        ("version: STSv1\nmode: enforce\nmx: a.example\u{7}\nmax_age: 1\n", "line 3"),
        ("version: STSv1\nmode: enforce\nmx: a.éxample\nmax_age: 1\n", "line 3"),
        ("version: STSv1\r\nmode: enforce\r\nmx: a.example\rmax_age: 1\r\n", "line 3"),
        ("<html><body>Welcome to nginx!</body></html>\n", "line 1"),
        // truncated in the middle of a field
        ("version: STSv1\nmode: enf", "mode is not"),
    ])
    func policiesThatDoNot(_ text: String, _ why: String) {
        #expect {
            try STSPolicy(parsing: bytes(text))
        } throws: { error in
            "\(error)".contains(why)
        }
    }

    /// Huge and hostile input: refused, in bounded time and without trusting a length.
    @Test func hugeAndHostileBodies() {
        let head = "version: STSv1\nmode: enforce\nmax_age: 1\n"
        let tooBig = bytes(head + String(repeating: "mx: a.example\n", count: 5_000))
        #expect(tooBig.count > STSPolicy.maximumSize)
        #expect(throws: STSPolicyError.self) { try STSPolicy(parsing: tooBig) }
        // Many patterns under the size limit: bounded too.
        #expect(throws: STSPolicyError.self) { try STSPolicy(parsing: bytes(head + String(repeating: "mx: a.example\n", count: 65))) }
        // A NUL, a 64 KiB line, binary noise.
        #expect(throws: STSPolicyError.self) { try STSPolicy(parsing: bytes(head + "mx: a.example\u{0}.evil\n")) }
        #expect(throws: STSPolicyError.self) { try STSPolicy(parsing: bytes(head + "x: " + String(repeating: "A", count: 65_000))) }
        var noise = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let random = (0..<Int.random(in: 1...2_000, using: &noise)).map { _ in UInt8.random(in: 0...255, using: &noise) }
            #expect(throws: STSPolicyError.self) { try STSPolicy(parsing: random) }
        }
        // A long key is not a field name.
        #expect(throws: STSPolicyError.self) { try STSPolicy(parsing: bytes(head + String(repeating: "k", count: 33) + ": v\nmx: a.example\n")) }
    }

    // MARK: MX patterns (4.1)

    @Test(arguments: [
        ("mail.example.com", true), ("MAIL.Example.COM", true), ("mail.example.com.", true),
        ("mx1.example.net", true), ("example.net", false), ("a.b.example.net", false), ("xexample.net", false),
        ("mail.example.com.evil", false), ("backupmx.example.com", true), ("", false), (".example.net", false),
    ])
    func patterns(_ host: String, _ matches: Bool) throws {
        let p = try STSPolicy(parsing: bytes(Self.good))
        #expect(p.matches(host) == matches, "\(host)")
    }
}
