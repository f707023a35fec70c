import Foundation
import Testing
@testable import SLTransport

/// The parsers DANE puts in front of attacker input: TLSA rdata and whole DNS
/// replies, fed malformed, truncated and hostile bytes (no network).
@Suite struct TLSAParsingTests {
    static let sha256 = [UInt8](repeating: 0xAB, count: 32)
    static let sha512 = [UInt8](repeating: 0xCD, count: 64)

    /// rdata → parsed?, usable for SMTP?
    static let records: [(String, [UInt8], Bool, Bool)] = [
        ("DANE-EE SPKI SHA-256", [3, 1, 1] + sha256, true, true),
        ("DANE-TA cert SHA-512", [2, 0, 2] + sha512, true, true),
        ("DANE-EE full key", [3, 1, 0] + [UInt8](repeating: 1, count: 91), true, true),
        ("PKIX-TA is not for SMTP", [0, 0, 1] + sha256, true, false),
        ("PKIX-EE is not for SMTP", [1, 1, 1] + sha256, true, false),
        ("unknown usage", [4, 1, 1] + sha256, true, false),
        ("usage 255", [255, 1, 1] + sha256, true, false),
        ("unknown selector", [3, 2, 1] + sha256, true, false),
        ("unknown matching type", [3, 1, 3] + sha256, true, false),
        ("SHA-256 one octet short", [3, 1, 1] + sha256.dropLast(), true, false),
        ("SHA-256 one octet long", [3, 1, 1] + sha256 + [0], true, false),
        ("SHA-512 with a SHA-256 digest", [3, 1, 2] + sha256, true, false),
        ("full data beyond 16 KiB", [3, 1, 0] + [UInt8](repeating: 7, count: 16_385), true, false),
        ("no data", [3, 1, 1], false, false),
        ("two octets", [3, 1], false, false),
        ("empty", [], false, false),
    ]

    @Test(arguments: records.indices)
    func tlsaRecordData(_ i: Int) {
        let (name, rdata, parses, usable) = Self.records[i]
        let record = try? TLSARecord(rdata: rdata)
        #expect((record != nil) == parses, "\(name)")
        #expect((record?.isUsableForSMTP ?? false) == usable, "\(name)")
    }

    @Test func aValidatedRRsetWithoutUsableRecordsMeansTLSWithoutAuthentication() {
        let rrset = DNSResolver.tlsaRecords([[1, 1, 1] + Self.sha256, [3, 1]], name: "_25._tcp.mx.example")
        guard case .secure(let records) = rrset else { Issue.record("not secure"); return }
        #expect(records.count == 1)        // the malformed one is dropped, the set still counts
        guard case .encryptOnly = DANEPolicy.policy(host: "mx.example", records: records) else {
            Issue.record("expected encrypt-only"); return
        }
        guard case .authenticate(let a) = DANEPolicy.policy(host: "mx.example", records: records + [TLSARecord(usage: 3, selector: 1, matchingType: 1, data: Self.sha256)]) else {
            Issue.record("expected authenticate"); return
        }
        #expect(a.records.count == 1 && a.baseDomain == "mx.example")
    }

    @Test func summariesShowAPrefixOnly() {
        let r = TLSARecord(usage: 3, selector: 1, matchingType: 1, data: Self.sha256)
        #expect(r.summary == "3 1 1 abababababababab…")
    }

    // MARK: DNS replies

    /// A reply for `name` with `answers` (type, class, rdata) in the answer section.
    static func reply(_ name: String = "_25._tcp.mx.example", flags: UInt16 = 0x81A0, answers: [(UInt16, UInt16, [UInt8])],
                      ancount: Int? = nil) -> [UInt8] {
        var m: [UInt8] = [0x12, 0x34, UInt8(flags >> 8), UInt8(flags & 0xFF), 0, 1]
        let count = ancount ?? answers.count
        m += [UInt8(count >> 8), UInt8(count & 0xFF), 0, 0, 0, 0]
        for label in name.split(separator: ".") { m += [UInt8(label.utf8.count)] + Array(label.utf8) }
        m += [0, 0, 52, 0, 1]
        for (type, klass, rdata) in answers {
            m += [0xC0, 0x0C, UInt8(type >> 8), UInt8(type & 0xFF), UInt8(klass >> 8), UInt8(klass & 0xFF), 0, 0, 1, 44,
                  UInt8(rdata.count >> 8), UInt8(rdata.count & 0xFF)] + rdata
        }
        return m
    }

    @Test func aWellFormedReplyWithTheADBit() throws {
        let a = try DNSAnswer.parse(Self.reply(answers: [(52, 1, [3, 1, 1] + Self.sha256)]), name: "x", type: 52)
        #expect(a.authenticated)
        #expect(a.records?.count == 1)
        #expect(a.records?.first?.rdata == [3, 1, 1] + Self.sha256)
        // without AD (0x8180): records, not secure
        let b = try DNSAnswer.parse(Self.reply(flags: 0x8180, answers: [(52, 1, [3, 1, 1] + Self.sha256)]), name: "x", type: 52)
        #expect(!b.authenticated && b.records?.count == 1)
    }

    @Test func recordsOfAnotherTypeOrClassAreSkipped() throws {
        // an RRSIG (46), a CNAME (5) and a TLSA in class CH (3) beside one real TLSA
        let a = try DNSAnswer.parse(Self.reply(answers: [(46, 1, [1, 2, 3]), (5, 1, [0]), (52, 3, [3, 1, 1] + Self.sha256),
                                                         (52, 1, [2, 0, 1] + Self.sha256)]), name: "x", type: 52)
        #expect(a.records?.map(\.rdata) == [[2, 0, 1] + Self.sha256])
        let none = try DNSAnswer.parse(Self.reply(answers: [(46, 1, [1, 2, 3])]), name: "x", type: 52)
        #expect(none.records == nil)
    }

    static let hostile: [(String, [UInt8])] = {
        let good = reply(answers: [(52, 1, [3, 1, 1] + sha256)])
        var rdlengthBeyondEnd = good
        rdlengthBeyondEnd[rdlengthBeyondEnd.count - 35 - 2] = 0x7F      // rdlength's high octet
        var pointerLoop = good
        // the answer's owner name points at itself
        let owner = good.count - 32 - 3 - 10 - 2
        pointerLoop[owner] = 0xC0; pointerLoop[owner + 1] = UInt8(owner)
        return [
            ("empty", []),
            ("a header cut short", Array(good.prefix(7))),
            ("a query, not a response", reply(flags: 0x0120, answers: [(52, 1, [3, 1, 1] + sha256)])),
            ("cut inside the rdata", Array(good.dropLast(5))),
            ("cut inside the question", Array(good.prefix(20))),
            ("rdlength past the end", rdlengthBeyondEnd),
            ("more answers counted than present", reply(answers: [(52, 1, [3, 1, 1] + sha256)], ancount: 9)),
            ("a compression pointer loop", pointerLoop),
            ("65,536 octets", [UInt8](repeating: 0xFF, count: 65_536)),
        ]
    }()

    @Test(arguments: hostile.indices)
    func hostileRepliesAreErrorsNotCrashes(_ i: Int) {
        let (name, bytes) = Self.hostile[i]
        #expect(throws: DNSError.self, "\(name)") { try DNSAnswer.parse(bytes, name: "x", type: 52) }
    }

    @Test func theADBitOfADenialIsReadFromTheHeaderAlone() {
        #expect(DNSAnswer.headerSaysAuthenticated(Self.reply(flags: 0x81A0, answers: [])))
        #expect(!DNSAnswer.headerSaysAuthenticated(Self.reply(flags: 0x8180, answers: [])))
        #expect(!DNSAnswer.headerSaysAuthenticated(Self.reply(flags: 0x01A0, answers: [])))   // not a response
        #expect(!DNSAnswer.headerSaysAuthenticated([UInt8](repeating: 0, count: 65_535)))     // no reply arrived
        #expect(!DNSAnswer.headerSaysAuthenticated([0x81, 0xA0]))
    }
}
