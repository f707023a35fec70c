import Testing
@testable import SLEscrow

/// Inputs the escrow-link fuzz target (fuzz/Targets/escrow-link) found to break
/// EscrowLink(parsing:); the inputs are also in fuzz/Corpus/escrow-link.
@Suite struct EscrowFuzzRegressionTests {
    /// escrow-link: a link whose id ends in FULLWIDTH LATIN SMALL LETTER F (U+FF46)
    /// parsed. The id check used Character.isHexDigit, which is true for the
    /// fullwidth forms too, so an id of 32 characters but up to 96 octets, not
    /// the 32 lower-case hex digits every id is, reached the store and the portal.
    @Test func fullwidthHexDigitsAreNoId() {
        let secret = "Zk9_-abcdefghijklmnopqrstuvwxyzABCDEFGHIJK"
        #expect(EscrowLink(parsing: "https://p.test/e/0123456789abcdef0123456789abcde\u{FF46}/3#\(secret)") == nil)
        #expect(EscrowLink(parsing: "https://p.test/e/\(String(repeating: "\u{FF10}", count: 32))/3#\(secret)") == nil)
        #expect(EscrowLink(parsing: "https://p.test/e/0123456789abcdef0123456789abcdef/3#\(secret)")?.id == "0123456789abcdef0123456789abcdef")
    }

    /// escrow-link: the template "{unknown} {" rendered as "{unknown}  {". render
    /// appended the text before a "{" and then, finding no "}", returned it again
    /// with the rest: the text before an unclosed brace came out twice.
    @Test func textBeforeAnUnclosedBraceIsWrittenOnce() {
        #expect(NoticeTemplates.render("{unknown} {", [:]) == "{unknown} {")
        #expect(NoticeTemplates.render("Hello {sender}, a { b", ["sender": "Al"]) == "Hello Al, a { b")
    }
}
