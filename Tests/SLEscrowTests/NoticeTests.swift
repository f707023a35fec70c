import Foundation
import Testing
@testable import SLEscrow
import SLMessage

/// Notices: placeholders filled, HTML escaped, header fields kept on one line
/// whatever a sender's From or a template holds; links parsed strictly.
@Suite struct NoticeTests {
    static let values = NoticeTemplates.Values(
        sender: "Mallory <m@evil.test>\r\nBcc: everyone@example.org", recipient: "bob@example.org",
        link: "https://portal.test/e/0123456789abcdef0123456789abcdef/0#" + String(repeating: "A", count: 43),
        question: "Is 1 < 2 & \"yes\"?", expires: Date(timeIntervalSince1970: 1_800_000_000), id: "0123456789abcdef0123456789abcdef")

    @Test func aNoticeKeepsHostileValuesInTheirPlace() throws {
        var t = NoticeTemplates()
        t.subject = "From {sender} {unknown}"
        let notice = try t.notice(Self.values, from: "Clinic <notices@clinic.test>", hostname: "mx.clinic.test", date: Date())
        let header = String(decoding: notice.header.bytes, as: UTF8.self)
        // The sender's line break does not start a field of its own.
        #expect(notice.header.all("Bcc").isEmpty)
        #expect(notice.header.all("Subject").count == 1)
        #expect(header.contains("{unknown}"))
        #expect(notice.header["To"] == "bob@example.org")
        #expect(notice.header["Auto-Submitted"] == "auto-generated")
        let body = String(decoding: try notice.body.readAll(), as: UTF8.self)
        #expect(body.contains("Is 1 &lt; 2 &amp; &quot;yes&quot;?"))          // HTML part, escaped
        #expect(body.contains("Is 1 < 2 & \"yes\"?"))                          // text part, as written
        #expect(body.contains(Self.values.link))
        #expect(body.contains("Fri, 15 Jan 2027"))
    }

    @Test func loginNoticesAskToSignIn() throws {
        var v = Self.values
        v.question = nil
        let notice = try NoticeTemplates().notice(v, from: "a@clinic.test", hostname: "h", date: Date())
        let body = String(decoding: try notice.body.readAll(), as: UTF8.self)
        #expect(body.contains("Sign in with your escrow account"))
        #expect(!body.contains("asked this question"))
    }

    @Test func nonASCIITemplatesAreQuotedPrintable() throws {
        var t = NoticeTemplates()
        t.text = "Grüße, {recipient}: {link}\n"
        t.subject = "Nachricht für {recipient}"
        let notice = try t.notice(Self.values, from: "a@clinic.test", hostname: "h", date: Date())
        #expect(try notice.bytes().allSatisfy { $0 < 0x80 })
        #expect(notice.header["Subject"]?.hasPrefix("=?UTF-8?") == true || notice.header["Subject"]?.hasPrefix("=?utf-8?") == true)
    }

    static let id = "0123456789abcdef0123456789abcdef"
    static let secret = "Zk9_-abcdefghijklmnopqrstuvwxyzABCDEFGHIJK"

    @Test(arguments: [
        ("https://p.test/e/\(id)/0#\(secret)", true),
        ("  <https://p.test/e/\(id)/12#\(secret)>\n", true),
        ("https://p.test/e/\(id)/0", false),                      // no secret
        ("https://p.test/e/\(id)/x#\(secret)", false),            // no index
        ("https://p.test/e/\(id)/-1#\(secret)", false),
        ("https://p.test/e/\(id.uppercased())/0#\(secret)", false),
        ("https://p.test/e/\(id.dropLast())/0#\(secret)", false),
        ("https://p.test/e/\(id)/0#short", false),
        ("https://p.test/e/\(id)/0#\(secret)=", false),          // padding is not base64url without padding
        ("https://p.test/e/\(id)/0#\(secret)%00", false),
        ("#", false), ("", false), ("/0#\(secret)", false),
        (String(repeating: "/", count: 10_000) + "#" + secret, false),
    ])
    func linksParseStrictly(_ text: String, _ valid: Bool) {
        let link = EscrowLink(parsing: text)
        #expect((link != nil) == valid, "\(text.prefix(80))")
        if let link { #expect(link.id == Self.id && link.secret == Self.secret) }
    }

    @Test func aLinkRoundTrips() {
        let l = EscrowLink(id: Self.id, index: 7, secret: Self.secret)
        #expect(EscrowLink(parsing: l.url(base: "https://portal.example/escrow")) == l)
    }
}
