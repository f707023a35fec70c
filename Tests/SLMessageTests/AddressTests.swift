import Foundation
import Testing
@testable import SLMessage

/// One valid input and what it must parse to.
struct ValidAddress: CustomTestStringConvertible, Sendable {
    var input: String
    var addrSpec: String
    var displayName: String?
    var asciiDomain: String
    var key: String
    var testDescription: String { input }
}

@Suite struct AddressTests {
    static let valid: [ValidAddress] = [
        .init(input: "a@example.org", addrSpec: "a@example.org", displayName: nil,
              asciiDomain: "example.org", key: "a@example.org"),
        .init(input: "<a@example.org>", addrSpec: "a@example.org", displayName: nil,
              asciiDomain: "example.org", key: "a@example.org"),
        .init(input: "John Doe <John.Doe@Example.ORG>", addrSpec: "John.Doe@Example.ORG", displayName: "John Doe",
              asciiDomain: "example.org", key: "john.doe@example.org"),
        .init(input: "\"Doe, John\" <j@x.example>", addrSpec: "j@x.example", displayName: "Doe, John",
              asciiDomain: "x.example", key: "j@x.example"),
        .init(input: "\"say \\\"hi\\\" \\\\ bye\" <j@x.example>", addrSpec: "j@x.example", displayName: "say \"hi\" \\ bye",
              asciiDomain: "x.example", key: "j@x.example"),
        .init(input: "John Q. Public <jqp@x.example>", addrSpec: "jqp@x.example", displayName: "John Q. Public",
              asciiDomain: "x.example", key: "jqp@x.example"),
        .init(input: "=?UTF-8?Q?J=C3=B6rg?= <j@x.example>", addrSpec: "j@x.example", displayName: "Jörg",
              asciiDomain: "x.example", key: "j@x.example"),
        .init(input: "=?UTF-8?B?SsO2cmc=?= =?UTF-8?Q?_M=C3=BCller?= <j@x.example>", addrSpec: "j@x.example",
              displayName: "Jörg Müller", asciiDomain: "x.example", key: "j@x.example"),
        .init(input: "Dr. =?ISO-8859-1?Q?J=F6rg?= <j@x.example>", addrSpec: "j@x.example", displayName: "Dr. Jörg",
              asciiDomain: "x.example", key: "j@x.example"),
        .init(input: "\"=?UTF-8?Q?J=C3=B6rg?=\" <j@x.example>", addrSpec: "j@x.example", displayName: "Jörg",
              asciiDomain: "x.example", key: "j@x.example"),
        .init(input: "Jörg Müller <jörg@müller.example>", addrSpec: "jörg@müller.example", displayName: "Jörg Müller",
              asciiDomain: "xn--mller-kva.example", key: "jörg@xn--mller-kva.example"),
        .init(input: "\"a b\"@x.example", addrSpec: "\"a b\"@x.example", displayName: nil,
              asciiDomain: "x.example", key: "a b@x.example"),
        .init(input: "\"a\\\"b\"@x.example", addrSpec: "\"a\\\"b\"@x.example", displayName: nil,
              asciiDomain: "x.example", key: "a\"b@x.example"),
        .init(input: "\"plain\"@x.example", addrSpec: "plain@x.example", displayName: nil,
              asciiDomain: "x.example", key: "plain@x.example"),
        .init(input: "\"a@b\"@x.example", addrSpec: "\"a@b\"@x.example", displayName: nil,
              asciiDomain: "x.example", key: "a@b@x.example"),
        .init(input: "(comment) a(c)@(c)x.example (trailing (nested) comment)", addrSpec: "a@x.example", displayName: nil,
              asciiDomain: "x.example", key: "a@x.example"),
        .init(input: "Name (nick) <a@x.example> (work)", addrSpec: "a@x.example", displayName: "Name",
              asciiDomain: "x.example", key: "a@x.example"),
        .init(input: "<@r1.example,@r2.example:a@x.example>", addrSpec: "a@x.example", displayName: nil,
              asciiDomain: "x.example", key: "a@x.example"),
        .init(input: "john . doe @ x . example", addrSpec: "john.doe@x.example", displayName: nil,
              asciiDomain: "x.example", key: "john.doe@x.example"),
        .init(input: "\"john\".doe@x.example", addrSpec: "john.doe@x.example", displayName: nil,
              asciiDomain: "x.example", key: "john.doe@x.example"),
        .init(input: "user@bücher.example", addrSpec: "user@bücher.example", displayName: nil,
              asciiDomain: "xn--bcher-kva.example", key: "user@xn--bcher-kva.example"),
        .init(input: "user@BÜCHER.example", addrSpec: "user@BÜCHER.example", displayName: nil,
              asciiDomain: "xn--bcher-kva.example", key: "user@xn--bcher-kva.example"),
        .init(input: "user@xn--bcher-kva.example", addrSpec: "user@xn--bcher-kva.example", displayName: nil,
              asciiDomain: "xn--bcher-kva.example", key: "user@xn--bcher-kva.example"),
        // Decomposed ü (u + U+0308) normalises to the same A-label.
        .init(input: "user@bu\u{308}cher.example", addrSpec: "user@bu\u{308}cher.example", displayName: nil,
              asciiDomain: "xn--bcher-kva.example", key: "user@xn--bcher-kva.example"),
        .init(input: "user@例え.テスト", addrSpec: "user@例え.テスト", displayName: nil,
              asciiDomain: "xn--r8jz45g.xn--zckzah", key: "user@xn--r8jz45g.xn--zckzah"),
        .init(input: "用户@例子.广告", addrSpec: "用户@例子.广告", displayName: nil,
              asciiDomain: "xn--fsqu00a.xn--4rr70v", key: "用户@xn--fsqu00a.xn--4rr70v"),
        .init(input: "postmaster@[192.0.2.1]", addrSpec: "postmaster@[192.0.2.1]", displayName: nil,
              asciiDomain: "[192.0.2.1]", key: "postmaster@[192.0.2.1]"),
        .init(input: "a@[IPv6:2001:DB8::1]", addrSpec: "a@[IPv6:2001:DB8::1]", displayName: nil,
              asciiDomain: "[ipv6:2001:db8::1]", key: "a@[ipv6:2001:db8::1]"),
        .init(input: "\"\" <a@x.example>", addrSpec: "a@x.example", displayName: nil,
              asciiDomain: "x.example", key: "a@x.example"),
        .init(input: "a+tag@x.example", addrSpec: "a+tag@x.example", displayName: nil,
              asciiDomain: "x.example", key: "a+tag@x.example"),
        .init(input: "!#$%&'*+/=?^_`{|}~-@x.example", addrSpec: "!#$%&'*+/=?^_`{|}~-@x.example", displayName: nil,
              asciiDomain: "x.example", key: "!#$%&'*+/=?^_`{|}~-@x.example"),
        .init(input: "=?UTF-8?B?cg==?=@example.org", addrSpec: "=?UTF-8?B?cg==?=@example.org", displayName: nil,
              asciiDomain: "example.org", key: "=?utf-8?b?cg==?=@example.org"),
        .init(input: "\"John\tFolded\" <j@x.example>", addrSpec: "j@x.example", displayName: "John Folded",
              asciiDomain: "x.example", key: "j@x.example"),
        .init(input: "r4---sn-abc.example@r4---sn-abc.example", addrSpec: "r4---sn-abc.example@r4---sn-abc.example",
              displayName: nil, asciiDomain: "r4---sn-abc.example", key: "r4---sn-abc.example@r4---sn-abc.example"),
        .init(input: "a@localhost", addrSpec: "a@localhost", displayName: nil,
              asciiDomain: "localhost", key: "a@localhost"),
        .init(input: "  \t<a@x.example>  ", addrSpec: "a@x.example", displayName: nil,
              asciiDomain: "x.example", key: "a@x.example"),
    ]

    @Test(arguments: valid)
    func parsesValidAddress(_ v: ValidAddress) throws {
        let a = try EmailAddress(parsing: v.input)
        #expect(a.addrSpec == v.addrSpec)
        #expect(a.displayName == v.displayName)
        #expect(a.asciiDomain == v.asciiDomain)
        #expect(a.key == v.key)
        #expect(a.description == v.addrSpec)
        // The same value as a one-element header list gives the same address.
        #expect(try AddressList.parse(v.input) == [a])
        // What we would write back parses to the same mailbox.
        let again = try EmailAddress(parsing: a.headerValue)
        #expect(again == a)
    }

    static let invalid: [String] = [
        "",
        "   ",
        "plainaddress",
        "John Doe",
        "@x.example",
        "a@",
        "a@ ",
        "<a@>",
        "<>",
        "<a>",
        "\"\"@x.example",
        "\"unterminated@x.example",
        "a@x.example (unterminated comment",
        "a@x.example )",
        "<a@x.example",
        "Name <a@x.example",
        "a@x.example>",
        "a@[192.0.2.1",
        "a@x.example]",
        "a@@x.example",
        "a@x..example",
        "a@.x.example",
        "a@x.example.",
        ".a@x.example",
        "a.@x.example",
        "a..b@x.example",
        "John a@x.example",
        "a@x_y.example",
        "a@x!y.example",
        "a@-x.example",
        "a@x-.example",
        "a@\"x\".example",
        "a@xn--zz-.example",
        "a@xn--.example",
        "a@bü cher.example",
        "a@ex\u{200B}ample.org",
        "a@ex\u{00A0}ample.org",
        "a@ex✉ample.org",
        "a\u{7}@x.example",
        "<r\u{7}@example.org>",
        "a@x.example\r\nBcc: evil@x.example",
        "a@x.example\nBcc: evil@x.example",
        "a\u{0}b@x.example",
        "a\u{7F}@x.example",
        "a\u{85}@x.example",
        "Evil\u{1B}[31m <a@x.example>",
        "\"Evil\rName\" <a@x.example>",
        "=?UTF-8?Q?Evil=0D=0ABcc:_x@y?= <a@x.example>",
        "=?UTF-8?Q?Evil=0D=0ABcc=3A_x=40y?= <a@x.example>",
        "=?UTF-8?B?RXZpbAA=?= <a@x.example>",
        "=?UTF-8?Q?Evil=C2=85?= <a@x.example>",
        "\"=?UTF-8?B?RXZpbA0KQmNjOiB4QHk=?=\" <a@x.example>",
        "\"a\tb\"@x.example",
        String(repeating: "a", count: 65) + "@x.example",
        "\"" + String(repeating: "a", count: 63) + " \"@x.example",
        "a@" + String(repeating: "b", count: 64) + ".example",
        "a@" + String(repeating: "ü", count: 60) + ".example",
        String(repeating: "a", count: 64) + "@" + Array(repeating: String(repeating: "b", count: 60), count: 4).joined(separator: "."),
        "a@x.example, b@y.example",
        "a@x.example,",
        "Team: a@x.example;",
        "a\\b@x.example",
        "a@x.example extra",
        "<a@x.example> <b@y.example>",
        "Name <a@x.example> trailing",
        "<@r1.example a@x.example>",
        "(" + String(repeating: "(", count: 100) + String(repeating: ")", count: 101) + " a@x.example",
    ]

    @Test(arguments: invalid)
    func refusesInvalidAddress(_ input: String) {
        #expect(throws: AddressError.self) { try EmailAddress(parsing: input) }
    }

    static let invalidLists: [String] = [
        "a@x.example, John",
        "a@x.example b@y.example",
        "Team: a@x.example, b@y.example",
        "Team: a@x.example; b@y.example",
        "Outer: Inner: a@x.example;;",
        ": a@x.example;",
        "a@x.example, <b@y.example",
        "a@x.example, \"unterminated",
        "a@x.example, b\u{0}@y.example",
        "a@x.example;",
    ]

    @Test(arguments: invalidLists)
    func refusesInvalidList(_ input: String) {
        #expect(throws: AddressError.self) { try AddressList.parse(input) }
    }

    @Test func parsesListWithGroupsAndEmptyElements() throws {
        let list = try AddressList.parse(
            "undisclosed-recipients:;, a@x.example,, Team: \"B B\" <b@y.example>, ,c@z.example; , (just a comment) ,"
                + " D <d@w.example>, Empty Group : (nobody) ;")
        #expect(list.map(\.addrSpec) == ["a@x.example", "b@y.example", "c@z.example", "d@w.example"])
        #expect(list.map(\.displayName) == [nil, "B B", nil, "D"])
        #expect(try AddressList.parse("undisclosed-recipients:;").isEmpty)
        #expect(try AddressList.parse("").isEmpty)
        #expect(try AddressList.parse(" , ,, ").isEmpty)
    }

    @Test func parsesCommaInsideQuotesAndComments() throws {
        let list = try AddressList.parse("\"Doe, John\" <j@x.example>, (a, b) k@x.example (c, d)")
        #expect(list.map(\.addrSpec) == ["j@x.example", "k@x.example"])
        #expect(list.first?.displayName == "Doe, John")
    }

    @Test func keyIgnoresCaseQuotingAndNormalisation() throws {
        let a = try EmailAddress(parsing: "Alice <Alice@BÜCHER.example>")
        let b = try EmailAddress(parsing: "\"alice\"@xn--bcher-kva.EXAMPLE")
        #expect(a.key == b.key)
        #expect(a != b)        // different display name and domain as written
    }

    @Test func buildsFromParts() throws {
        let a = try EmailAddress(localPart: "john doe", domain: "bücher.example", displayName: "  John  ")
        #expect(a.addrSpec == "\"john doe\"@bücher.example")
        #expect(a.localPart == "john doe")
        #expect(a.displayName == "John")
        #expect(a.asciiDomain == "xn--bcher-kva.example")
        #expect(a.headerValue == "John <\"john doe\"@bücher.example>")
        #expect(try EmailAddress(localPart: "a", domain: "x.example", displayName: " ").displayName == nil)
        #expect(throws: AddressError.self) { try EmailAddress(localPart: "", domain: "x.example") }
        #expect(throws: AddressError.self) { try EmailAddress(localPart: "a", domain: "") }
        #expect(throws: AddressError.self) { try EmailAddress(localPart: "a\nb", domain: "x.example") }
        #expect(throws: AddressError.self) { try EmailAddress(localPart: "a", domain: "x.example", displayName: "a\r\nBcc: b") }
        #expect(throws: AddressError.self) { try EmailAddress(localPart: "a", domain: "[1.2.3.4") }
        #expect(throws: AddressError.self) { try EmailAddress(localPart: "a", domain: "[1.2 .3.4]") }
        #expect(throws: AddressError.self) { try EmailAddress(localPart: "a", domain: "x.example").withDisplayName("\u{1B}") }
    }

    @Test func headerValueQuotesAndEncodesDisplayNames() throws {
        let cases: [(String, String)] = [
            ("\"Doe, John\" <j@x.example>", "\"Doe, John\" <j@x.example>"),
            ("John Doe <j@x.example>", "John Doe <j@x.example>"),
            ("=?UTF-8?Q?J=C3=B6rg?= <j@x.example>", "=?UTF-8?B?SsO2cmc=?= <j@x.example>"),
            ("\"=?not encoded\" <j@x.example>", "=?UTF-8?B?PT9ub3QgZW5jb2RlZA==?= <j@x.example>"),
            ("j@x.example", "j@x.example"),
        ]
        for (input, expected) in cases {
            #expect(try EmailAddress(parsing: input).headerValue == expected)
        }
    }

    @Test func lengthLimitsAtTheBoundary() throws {
        let local64 = String(repeating: "a", count: 64)
        #expect(try EmailAddress(parsing: local64 + "@x.example").localPart == local64)
        let label63 = String(repeating: "b", count: 63)
        #expect(try EmailAddress(parsing: "a@" + label63 + ".example").asciiDomain == label63 + ".example")
        // 64 + 1 + 189 = 254 octets: allowed; one more is not.
        let domain189 = [String(repeating: "c", count: 63), String(repeating: "d", count: 63), String(repeating: "e", count: 61)]
            .joined(separator: ".")
        #expect(domain189.utf8.count == 189)
        #expect(try EmailAddress(parsing: local64 + "@" + domain189).addrSpec.utf8.count == 254)
        #expect(throws: AddressError.self) { try EmailAddress(parsing: local64 + "@" + domain189 + "e") }
    }

    // A time limit guards against a quadratic or looping parser hanging the suite;
    // speed itself is measured by bench/, not asserted here. Five minutes, not one:
    // on a loaded 2-core machine (a release build beside the suite) these took over
    // a minute; a quadratic parser would take hours.
    @Test(.timeLimit(.minutes(5))) func tenThousandAddressesParse() throws {
        let value = (0..<10_000).map { "Recipient \($0) <r\($0)@host\($0 % 97).example.org>" }.joined(separator: ",\t")
        let list = try AddressList.parse(value)
        #expect(list.count == 10_000)
        #expect(list.last?.addrSpec == "r9999@host8.example.org")
        #expect(list.last?.displayName == "Recipient 9999")
    }

    @Test func deeplyNestedCommentsAreRefusedNotRecursed() throws {
        let deep = String(repeating: "(", count: 100_000) + String(repeating: ")", count: 100_000) + " a@x.example"
        #expect(throws: AddressError.self) { try AddressList.parse(deep) }
        let unterminated = String(repeating: "(", count: 5000) + "r@example.org"
        #expect(throws: AddressError.self) { try AddressList.parse(unterminated) }
        let atLimit = String(repeating: "(", count: 64) + "x" + String(repeating: ")", count: 64) + " a@x.example"
        #expect(try AddressList.parse(atLimit).map(\.addrSpec) == ["a@x.example"])
        let overLimit = String(repeating: "(", count: 65) + String(repeating: ")", count: 65) + " a@x.example"
        #expect(throws: AddressError.self) { try AddressList.parse(overLimit) }
        // Escaped parentheses do not nest.
        let escaped = "(" + String(repeating: "\\(", count: 1000) + ") a@x.example"
        #expect(try AddressList.parse(escaped).count == 1)
    }

    @Test(.timeLimit(.minutes(5))) func megabyteOfGarbageEnds() throws {
        var rng = SplitMix64(seed: 0x5EED)
        let alphabet = Array("a@<>\"(),;:.[]\\ =?Qé\u{1F600}".unicodeScalars)
        var garbage = String.UnicodeScalarView()
        // (counting scalars as we go: UnicodeScalarView.count is O(n))
        for _ in 0..<1_000_000 { garbage.append(alphabet[Int(rng.next() % UInt64(alphabet.count))]) }
        let inputs = [
            String(garbage),
            String(repeating: "=?a?b?x", count: 150_000) + "?=",
            String(repeating: "\"", count: 1_000_001),
            String(repeating: "a", count: 1_000_000),
            String(repeating: "<", count: 1_000_000),
            String(repeating: "a.", count: 500_000) + "@x",
            "=?UTF-8?Q?" + String(repeating: "=41", count: 333_333) + "?= <a@x.example>",
            String(repeating: "=?UTF-8?Q?a?= ", count: 70_000) + "<a@x.example>",
            String(repeating: "a@x.example,", count: 80_000) + "(",
        ]
        for input in inputs {
            // either a list or an AddressError; anything else (a crash) fails the run
            do { _ = try AddressList.parse(input) } catch let e as AddressError { #expect(!e.description.isEmpty) }
        }
    }

    // MARK: - Punycode and IDNA

    static let punycodeVectors: [(String, [UInt32], String)] = [
        // RFC 3492 section 7.1.
        ("(A) Arabic (Egyptian)", [0x0644, 0x064A, 0x0647, 0x0645, 0x0627, 0x0628, 0x062A, 0x0643, 0x0644, 0x0645,
                                   0x0648, 0x0634, 0x0639, 0x0631, 0x0628, 0x064A, 0x061F], "egbpdaj6bu4bxfgehfvwxn"),
        ("(B) Chinese (simplified)", [0x4ED6, 0x4EEC, 0x4E3A, 0x4EC0, 0x4E48, 0x4E0D, 0x8BF4, 0x4E2D, 0x6587],
         "ihqwcrb4cv8a8dqg056pqjye"),
        ("(I) Russian", [0x043F, 0x043E, 0x0447, 0x0435, 0x043C, 0x0443, 0x0436, 0x0435, 0x043E, 0x043D, 0x0438,
                         0x043D, 0x0435, 0x0433, 0x043E, 0x0432, 0x043E, 0x0440, 0x044F, 0x0442, 0x043F, 0x043E,
                         0x0440, 0x0443, 0x0441, 0x0441, 0x043A, 0x0438], "b1abfaaepdrnnbgefbadotcwatmq2g4l"),
        ("(L) 3<nen>B<gumi><kinpachi><sensei>", [0x0033, 0x5E74, 0x0042, 0x7D44, 0x91D1, 0x516B, 0x5148, 0x751F],
         "3B-ww4c5e180e575a65lsy2b"),
        ("(S) -> $1.00 <-", [0x2D, 0x3E, 0x20, 0x24, 0x31, 0x2E, 0x30, 0x30, 0x20, 0x3C, 0x2D], "-> $1.00 <--"),
        ("bücher", [0x62, 0xFC, 0x63, 0x68, 0x65, 0x72], "bcher-kva"),
    ]

    @Test(arguments: punycodeVectors.indices)
    func punycodeMatchesRFC3492(_ index: Int) throws {
        let (_, points, encoded) = Self.punycodeVectors[index]
        let scalars = points.compactMap(Unicode.Scalar.init)
        #expect(scalars.count == points.count)
        #expect(Punycode.encode(scalars) == encoded)
        let decoded = try #require(Punycode.decode(encoded))
        #expect(decoded.unicodeScalars.map(\.value) == points)
        // Decoding is case-insensitive (RFC 3492 uses mixed-case annotations).
        #expect(Punycode.decode(encoded.uppercased())?.unicodeScalars.count == points.count)
    }

    @Test func punycodeRoundTrips() throws {
        var rng = SplitMix64(seed: 42)
        for _ in 0..<500 {
            var s = String.UnicodeScalarView()
            for _ in 0..<Int(rng.next() % 20) {
                let v = UInt32(rng.next() % 0x10FFFF)
                if let u = Unicode.Scalar(v) { s.append(u) }
            }
            let text = String(s)
            let encoded = try #require(Punycode.encode(text))
            #expect(encoded.utf8.allSatisfy { $0 < 0x80 })
            #expect(Punycode.decode(encoded) == text)
        }
    }

    @Test func punycodeRefusesMalformedInput() {
        for bad in ["ü", "abc-9999999999999999999", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "a-!", "-", "bcher-kv",
                    String(repeating: "9", count: 5000)] {
            #expect(Punycode.decode(bad) == nil, "\(bad.prefix(20))")
        }
    }

    @Test func idnaToASCIIAndBack() throws {
        #expect(try IDNA.toASCII("Bücher.Example") == "xn--bcher-kva.example")
        #expect(try IDNA.toASCII("münchen。de") == "xn--mnchen-3ya.de")
        #expect(try IDNA.toASCII("EXAMPLE.org") == "example.org")
        #expect(IDNA.toUnicode("xn--bcher-kva.example") == "bücher.example")
        #expect(IDNA.toUnicode("xn--zz-.example") == "xn--zz-.example")
        #expect(throws: AddressError.self) { try IDNA.toASCII("a..b") }
        #expect(throws: AddressError.self) { try IDNA.toASCII("\u{301}abc.example") }
        #expect(throws: AddressError.self) { try IDNA.toASCII(String(repeating: "ü", count: 70)) }
    }
}

/// A small deterministic generator so the garbage and round-trip tests are repeatable.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
