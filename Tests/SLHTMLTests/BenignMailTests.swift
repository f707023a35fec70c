import Foundation
import Testing
import SLHTML

/// Ordinary mail HTML keeps what a reader needs: text, structure, links, tables,
/// the message's own images and plain styling. Each case is the exact output.
@Suite struct BenignMailTests {
    static let portal = Sanitizers.portalPrefix

    @Test(arguments: [
        ("plain text", "Hello, world", "Hello, world"),
        ("text is escaped", "He said \"hi\" & 'bye' 1 < 2 > 0",
         "He said &quot;hi&quot; &amp; &#39;bye&#39; 1 &lt; 2 &gt; 0"),
        ("references decoded, then escaped", "&copy; 2026 &lt;b&gt; caf&eacute;&nbsp;x",
         "© 2026 &lt;b&gt; café\u{a0}x"),
        ("non-ASCII kept", "<p>Grüße, 世界 😀</p>", "<p>Grüße, 世界 😀</p>"),
        ("paragraphs and inline", "<p>Hi <b>Bob</b>, <i>see</i> <u>this</u> <em>and</em> <strong>that</strong><br>bye</p>",
         "<p>Hi <b>Bob</b>, <i>see</i> <u>this</u> <em>and</em> <strong>that</strong><br>bye</p>"),
        ("https link", "<a href=\"https://example.org/x?a=1&amp;b=2#top\">this</a>",
         "<a href=\"https://example.org/x?a=1&amp;b=2#top\" rel=\"noopener noreferrer\" target=\"_blank\">this</a>"),
        ("link scheme in capitals, spaces trimmed", "<a href=\"  HTTP://example.org/ \" title=\"T\">x</a>",
         "<a href=\"HTTP://example.org/\" rel=\"noopener noreferrer\" target=\"_blank\" title=\"T\">x</a>"),
        ("mailto link", "<a href=\"mailto:bob@example.org?subject=Hi\">mail me</a>",
         "<a href=\"mailto:bob@example.org?subject=Hi\" rel=\"noopener noreferrer\" target=\"_blank\">mail me</a>"),
        ("a link's own target and rel are replaced", "<a href=\"https://e.org/\" target=\"_top\" rel=\"opener\">x</a>",
         "<a href=\"https://e.org/\" rel=\"noopener noreferrer\" target=\"_blank\">x</a>"),
        ("relative link loses its a", "<a href=\"/account\">account</a>", "account"),
        ("table with layout attributes",
         "<table width=\"600\" border=\"0\" cellpadding=\"4\" cellspacing=\"0\" bgcolor=\"#ffffff\"><tr><td colspan=\"2\" align=\"center\" valign=\"top\">Total</td><th rowspan=\"1\" width=\"50%\">42</th></tr></table>",
         "<table width=\"600\" border=\"0\" cellpadding=\"4\" cellspacing=\"0\" bgcolor=\"#ffffff\"><tr><td colspan=\"2\" align=\"center\" valign=\"top\">Total</td><th rowspan=\"1\" width=\"50%\">42</th></tr></table>"),
        ("table sections", "<table><thead><tr><th>a</th></tr></thead><tbody><tr><td>b</td></tr></tbody><tfoot><tr><td>c</td></tr></tfoot><caption>cap</caption></table>",
         "<table><thead><tr><th>a</th></tr></thead><tbody><tr><td>b</td></tr></tbody><tfoot><tr><td>c</td></tr></tfoot><caption>cap</caption></table>"),
        ("cid image", "<img src=\"cid:logo@clinic.test\" alt=\"Clinic\" width=\"120\" height=\"40\" border=\"0\">",
         "<img src=\"\(portal)logo%40clinic%2Etest\" alt=\"Clinic\" width=\"120\" height=\"40\" border=\"0\">"),
        ("CID in capitals", "<img src=\"CID:a1\">", "<img src=\"\(portal)a1\">"),
        ("unknown cid image becomes its alt text", "<img src=\"cid:\" alt=\"[logo]\">", "[logo]"),
        ("remote image becomes its alt text", "<p><img src=\"https://tracker.example/p.gif\" alt=\"\">Hi</p>", "<p>Hi</p>"),
        ("style filtered to the allowed declarations",
         "<p style=\"COLOR: #333; font-family: 'Helvetica Neue', Arial, sans-serif; position: absolute; font-size: 14px; margin: 0 auto\">x</p>",
         "<p style=\"color: #333; font-family: &#39;Helvetica Neue&#39;, Arial, sans-serif; font-size: 14px; margin: 0 auto\">x</p>"),
        ("border kept, border-image not", "<td style=\"border-bottom: 1px solid #ccc; border-image-source: none\">x</td>",
         "<td style=\"border-bottom: 1px solid #ccc\">x</td>"),
        ("style with nothing left is dropped", "<span style=\"color: rgb(0,0,0)\">x</span>", "<span>x</span>"),
        ("font", "<font face=\"Arial\" color=\"red\" size=\"2\">x</font>", "<font face=\"Arial\" color=\"red\" size=\"2\">x</font>"),
        ("lists", "<ul type=\"disc\"><li>a</li></ul><ol start=\"3\"><li value=\"5\">b</li></ol><dl><dt>t</dt><dd>d</dd></dl>",
         "<ul type=\"disc\"><li>a</li></ul><ol start=\"3\"><li value=\"5\">b</li></ol><dl><dt>t</dt><dd>d</dd></dl>"),
        ("quotes and code", "<blockquote><p>quoted</p></blockquote><pre>  x = 1\n  y = 2</pre><code>z</code>",
         "<blockquote><p>quoted</p></blockquote><pre>  x = 1\n  y = 2</pre><code>z</code>"),
        ("headings and rules", "<h1 align=\"center\">Title</h1><hr width=\"50%\"><h6>small</h6>",
         "<h1 align=\"center\">Title</h1><hr width=\"50%\"><h6>small</h6>"),
        ("whole document: only the body's content",
         "<!DOCTYPE html><html><head><title>Newsletter</title><meta charset=\"utf-8\"><style>p { color: red }</style></head><body bgcolor=\"#eee\"><p>Body</p></body></html>",
         "<p>Body</p>"),
        ("Outlook markup unwrapped, classes dropped",
         "<p class=\"MsoNormal\"><span lang=\"EN-US\" style=\"mso-fareast-language:DE\">Hello<o:p></o:p></span></p>",
         "<p><span lang=\"EN-US\">Hello</span></p>"),
        ("dir and lang", "<div dir=\"rtl\" lang=\"ar\">مرحبا</div>", "<div dir=\"rtl\" lang=\"ar\">مرحبا</div>"),
        ("comments dropped", "a<!-- [if mso]>x<![endif] -->b", "ab"),
        ("empty input", "", ""),
    ])
    func keepsWhatMailNeeds(_ what: String, _ input: String, _ expected: String) {
        #expect(Sanitizers.portal.sanitize(input) == expected, "\(what)")
    }

    /// A newsletter-like message: the output reads back as itself, and every
    /// piece of text survives in order.
    @Test func aNewsletterKeepsItsText() throws {
        let mail = """
        <html><head><style>.x{color:red}</style></head><body>
        <table width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">
        <img src="cid:header" alt="Header" width="600">
        <h1 style="font-family: Georgia, serif">Monthly news</h1>
        <p>First item: <a href="https://example.org/1">read</a>.</p>
        <p>Second item &mdash; <b>bold</b> and <span style="color:#c00">red</span>.</p>
        <p><img src="https://tracker.example/open.gif" width="1" height="1" alt=""></p>
        <p style="font-size: 11px">Unsubscribe: <a href="mailto:unsub@example.org">mail us</a></p>
        </td></tr></table></body></html>
        """
        let once = Sanitizers.identity.sanitize(mail)
        #expect(Sanitizers.identity.sanitize(once) == once)
        let scanned = try ScannedOutput(once)
        for text in ["Monthly news", "First item: read.", "Second item — bold and red.", "Unsubscribe: mail us"] {
            #expect(scanned.text.replacingOccurrences(of: "\n", with: "").contains(text), "\(text) in \(scanned.text)")
        }
        #expect(scanned.tags.filter { $0.name == "img" && !$0.isEnd }.map { $0.value("src") } == ["cid:header"])
        #expect(scanned.tags.filter { $0.name == "a" && !$0.isEnd }.count == 2)
        #expect(ExpectedPolicy.violations(once, imagePrefix: "cid:").isEmpty)
    }

    /// Unwrapping can leave markup that libxml2 reads back as another tree (a
    /// block inside an inline, an a inside an a); sanitize repeats until the
    /// output reads back as itself, so a second sanitize changes nothing.
    @Test(arguments: [
        ("<p><foo><p>x</p></foo></p>", "<p></p><p>x</p>"),
        ("<p><o:p><p>x</p></o:p></p>", "<p></p><p>x</p>"),
        ("<b><x><p>q</p></x></b>", "<b></b><p>q</p>"),
        ("<a href=https://a.test/><foo><a href=https://b.test/>x</a></foo></a>",
         "<a href=\"https://a.test/\" rel=\"noopener noreferrer\" target=\"_blank\"></a><a href=\"https://b.test/\" rel=\"noopener noreferrer\" target=\"_blank\">x</a>"),
        ("<ul><foo><li>a<li>b</foo></ul>", "<ul><li>a</li><li>b</li></ul>"),
    ])
    func unwrappingSettles(_ input: String, _ expected: String) {
        let once = Sanitizers.identity.sanitize(input)
        #expect(once == expected)
        #expect(Sanitizers.identity.sanitize(once) == once)
    }

    /// The portal may sanitize on several request threads at once.
    @Test func sanitizesConcurrently() async throws {
        let inputs = Array(XSSCorpus.vectors.prefix(60))
        let serial = inputs.map { Sanitizers.portal.sanitize($0) }
        let parallel = await withTaskGroup(of: (Int, String).self) { group in
            for round in 0..<4 {
                for (i, input) in inputs.enumerated() {
                    group.addTask { (i, Sanitizers.portal.sanitize(input)) }
                }
                _ = round
            }
            var out: [(Int, String)] = []
            for await r in group { out.append(r) }
            return out
        }
        #expect(parallel.count == inputs.count * 4)
        for (i, output) in parallel { #expect(output == serial[i]) }
    }
}
