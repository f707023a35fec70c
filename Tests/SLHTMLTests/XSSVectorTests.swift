import Foundation
import Testing
import SLHTML

/// Every vector of Fixtures/xss-vectors.txt, sanitized: only allowlisted markup,
/// no handler, no script URL, nothing pointing at the would-be attacker's host,
/// and a second sanitize changes nothing.
@Suite struct XSSVectorTests {
    @Test func theCorpusIsLargeAndFollowsItsConventions() throws {
        let vectors = XSSCorpus.vectors
        #expect(vectors.count >= 80, "only \(vectors.count) vectors")
        #expect(Set(vectors).count == vectors.count, "a vector is listed twice")
        for v in vectors {
            // Script calls xss(), which the browser test's pages define and watch.
            for dialog in ["alert(", "confirm(", "prompt("] { #expect(!v.contains(dialog), "\(dialog) in \(v)") }
            // Loads only ever go to XSSHOST, which the browser test turns into its
            // loopback canary: a raw vector in a browser reaches no other host.
            // (The host is the run of name characters after each "//"; the SVG
            // namespace name is never fetched.)
            var rest = Substring(v)
            while let r = rest.range(of: "//") {
                rest = rest[r.upperBound...]
                let host = rest.prefix { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }
                let allowed = host.isEmpty || host == "XSSHOST" || host == "www.w3.org" || host.allSatisfy { $0 == "-" }
                #expect(allowed, "a vector names the host \(host), not XSSHOST: \(v)")
            }
        }
    }

    @Test(arguments: XSSCorpus.vectors)
    func vectorIsDisarmed(_ vector: String) throws {
        let output = Sanitizers.portal.sanitize(vector)
        let violations = ExpectedPolicy.violations(output, imagePrefix: Sanitizers.portalPrefix)
        #expect(violations.isEmpty, "\(violations)\nvector: \(vector)\noutput: \(output)")
        #expect(!output.lowercased().contains("<script"))
    }

    @Test(arguments: XSSCorpus.vectors)
    func vectorSanitizesIdempotently(_ vector: String) throws {
        let once = Sanitizers.identity.sanitize(vector)
        let twice = Sanitizers.identity.sanitize(once)
        #expect(once == twice, "vector: \(vector)\nonce:  \(once)\ntwice: \(twice)")
        let violations = ExpectedPolicy.violations(once, imagePrefix: "cid:")
        #expect(violations.isEmpty, "\(violations)\nvector: \(vector)\noutput: \(once)")
    }

    /// A few vectors whose right answer is known exactly: what is left is the
    /// harmless text, in its place.
    @Test(arguments: [
        ("<img src=x onerror=xss()>", ""),
        ("<script>xss()</script>after", "after"),
        ("<a href=\"java&#x09;script:xss()\">click</a>", "click"),
        ("<a href=\"&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116&#0000058xss()\">click</a>", "click"),
        ("<img src=\"cid:logo\" onerror=\"xss()\" alt=\"logo\">", "<img src=\"cid:logo\" alt=\"logo\">"),
        ("<img src=\"http://XSSHOST/img.png\" alt=\"Logo\">", "Logo"),
        ("<div style=\"color: red; background: url(http://XSSHOST/bg.png)\">x</div>", "<div style=\"color: red\">x</div>"),
        ("<noscript><p title=\"</noscript><img src=x onerror=xss()>\"></noscript>", ""),
        ("<p title=\"&lt;/p&gt;&lt;img src=x onerror=xss()&gt;\">t</p>", "<p title=\"&lt;/p&gt;&lt;img src=x onerror=xss()&gt;\">t</p>"),
        ("<div>&lt;script&gt;xss()&lt;/script&gt;</div>", "<div>&lt;script&gt;xss()&lt;/script&gt;</div>"),
        ("<meta charset=\"UTF-7\">+ADw-script+AD4-xss()+ADw-/script+AD4-", "+ADw-script+AD4-xss()+ADw-/script+AD4-"),
        ("<div id=\"xss\" class=\"portal-banner\" name=\"n\">x</div>", "<div>x</div>"),
        ("a<!-- <img src=x onerror=xss()> -->b", "ab"),
        ("<scr\u{0}ipt>xss()</scr\u{0}ipt>", "xss()"),
    ])
    func knownVectorsLeaveExactlyTheirText(_ vector: String, _ expected: String) {
        #expect(Sanitizers.identity.sanitize(vector) == expected, "vector: \(vector)")
    }
}
