import Testing
@testable import SLPolicy

/// Inputs the fuzz targets in fuzz/Targets (vcard, sl-conf) found to break a
/// parser, each named by the input and what was wrong. Their minimised inputs are
/// also in fuzz/Corpus/<target>.
@Suite struct FuzzRegressionTests {
    /// sl-conf: "encrypt_trigger = [secure]\r\ntls_only = yes\r\n". The parser split
    /// the text on the Character "\n", but "\r\n" is one Character in Swift (one
    /// grapheme cluster), so a file with CRLF line ends was one line: the first
    /// free-text value swallowed every line after it and tls_only was silently
    /// never set. The same file with LF line ends always parsed as meant.
    @Test func crlfLineEndsSeparateLines() throws {
        let c = try Configuration.parse("encrypt_trigger = [secure]\r\ntls_only = yes\r\n")
        #expect(c.global.encryptTrigger == "[secure]")
        #expect(c.global.tlsOnly == true)
    }

    /// sl-conf: the same problem seen as a wrong line number: an error on the
    /// second CRLF line was reported on line 1 (or not at all).
    @Test func crlfErrorsNameTheirLine() {
        #expect {
            _ = try Configuration.parse("fallback = bounce\r\ntls_only = maybe\r\n", source: "t.conf")
        } throws: { error in
            (error as? ConfigurationError).map { $0.line == 2 && $0.message.contains("tls_only") } == true
        }
    }
}
