import Testing
@testable import SLMessage

// MIME (RFC 2045-2049, RFC 2231): Content-Type parsing, transfer encodings, the entity
// tree with byte-exact round trips, hostile nesting, and the canonical builder.

private func mb(_ s: String) -> Bytes { Array(s.utf8) }
private func crlfText(_ s: String) -> String { s.replacingOccurrences(of: "\n", with: "\r\n") }

/// True when every CR is followed by LF and every LF preceded by CR.
private func onlyCRLF(_ b: Bytes) -> Bool {
    for (i, c) in b.enumerated() {
        if c == 0x0D && (i + 1 >= b.count || b[i + 1] != 0x0A) { return false }
        if c == 0x0A && (i == 0 || b[i - 1] != 0x0D) { return false }
    }
    return true
}

private func longestLine(_ b: Bytes) -> Int {
    b.split(separator: 0x0A, omittingEmptySubsequences: false).map { $0.last == 0x0D ? $0.count - 1 : $0.count }.max() ?? 0
}

/// The tree's shape, for comparing structure across transformations.
private func shape(_ e: MIMEEntity) -> String {
    e.contentType.mimeType + (e.parts.isEmpty ? "" : "(" + e.parts.map(shape).joined(separator: ",") + ")")
}

/// A deterministic byte generator so failures reproduce.
private struct TestRNG: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state
    }
}

private let pdfBytes = mb("%PDF-1.4\n%äüöß\n")

private let realWorldLF = """
From: Alice <alice@example.org>
To: bob@example.net
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer=_b1"

This is a multi-part message in MIME format.
--outer=_b1
Content-Type: multipart/alternative;
 boundary=inner-b2

--inner-b2
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe, Bob! This line is long enough that it needs a soft line br=
eak.
--inner-b2
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: 7bit

<p>Hello</p>
--inner-b2--

--outer=_b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Ünïcödé 8-bit text
--outer=_b1
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment;
 filename*=utf-8''r%C3%A9sum%C3%A9.pdf
Content-Transfer-Encoding: BASE64 (PDF file)

JVBERi0xLjQKJcOkw7zDtsOfCg==
--outer=_b1--
epilogue text

"""

@Suite struct MIMETests {
    // MARK: Entity tree

    @Test(arguments: [false, true])
    func realWorldMessage(crlf: Bool) throws {
        let text = crlf ? crlfText(realWorldLF) : realWorldLF
        let m = try MIMEEntity.parse(mb(text))
        #expect(m.serialized() == mb(text))
        #expect(shape(m) == "multipart/mixed(multipart/alternative(text/plain,text/html),text/plain,application/pdf)")
        #expect(m.isMultipart)
        #expect(m.header["Subject"].map { EncodedWords.decode($0) } == "Grüße")
        #expect(m.preamble == mb("This is a multi-part message in MIME format."))
        #expect(m.epilogue == mb(crlf ? "epilogue text\r\n" : "epilogue text\n"))
        #expect(m.body.isEmpty)

        let alt = m.parts[0]
        #expect(alt.contentType.boundary == "inner-b2")
        #expect(alt.epilogue.isEmpty)
        #expect(try alt.parts[0].decodedBody() == mb("Grüße, Bob! This line is long enough that it needs a soft line break."))
        #expect(alt.parts[0].transferEncoding == "quoted-printable")
        #expect(try alt.parts[1].decodedBody() == mb("<p>Hello</p>"))
        #expect(alt.parts[1].contentType.charset == "utf-8")

        #expect(try m.parts[1].decodedBody() == mb("Ünïcödé 8-bit text"))
        #expect(m.parts[1].transferEncoding == "8bit")

        let pdf = m.parts[2]
        #expect(pdf.transferEncoding == "base64")
        #expect(try pdf.decodedBody() == pdfBytes)
        #expect(pdf.contentType.parameter("NAME") == "report.pdf")
        #expect(pdf.contentDisposition?.filename == "résumé.pdf")
        #expect(pdf.contentDisposition?.isInline == false)
    }

    @Test func canonicalCRLFOfLFMessageEqualsCRLFMessage() throws {
        let lf = try MIMEEntity.parse(mb(realWorldLF))
        let canonical = lf.canonicalCRLF().serialized()
        #expect(canonical == mb(crlfText(realWorldLF)))
        #expect(onlyCRLF(canonical))
    }

    /// Broken and unusual multiparts. Each must parse and serialise back byte for byte,
    /// with LF and with CRLF line ends, and canonicalising must keep the tree's shape.
    static let oddMessages: [(String, String)] = [
        ("missing boundary parameter",
         "Content-Type: multipart/mixed\n\nno boundary param\n--x\nstuff\n"),
        ("empty boundary parameter",
         "Content-Type: multipart/mixed; boundary=\"\"\n\n--\nstuff\n"),
        ("boundary never appears",
         "Content-Type: multipart/mixed; boundary=zz\n\npreamble only\n--x\n--zzz\n"),
        ("missing close delimiter",
         "Content-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: text/plain\n\npart one\n--zz\n\npart two, no close\n"),
        ("transport padding",
         "Content-Type: multipart/mixed; boundary=zz\n\n--zz  \t\n\npart\n--zz-- \t\nepilogue\n"),
        ("empty parts",
         "Content-Type: multipart/mixed; boundary=zz\n\n--zz\n--zz\n\n--zz--\n"),
        ("close before any open",
         "Content-Type: multipart/mixed; boundary=zz\n\npre\n--zz--\nepi\n"),
        ("junk after boundary is content",
         "Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\n--zzjunk\n--zz junk\n--zz--junk\n--zz--\n"),
        ("part without header section",
         "Content-Type: multipart/mixed; boundary=zz\n\n--zz\nplain text, no headers\n--zz--\n"),
        ("close delimiter at end without line end",
         "Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\nx\n--zz--"),
        ("open delimiter at end of input",
         "Content-Type: multipart/mixed; boundary=zz\n\n--zz"),
        ("body without final newline",
         "Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\nlast line"),
        ("message/rfc822 part",
         "Content-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: message/rfc822\n\nSubject: inner\nContent-Type: multipart/alternative; boundary=in\n\n--in\n\na\n--in--\n--zz--\n"),
        ("message/rfc822 with base64 stays a leaf",
         "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeA0KDQpoaQ==\n"),
        ("digest parts default to message/rfc822",
         "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: a\n\nbody a\n--d\nContent-Type: text/plain\n\nplain\n--d--\n"),
        ("child reuses the parent's boundary",
         "Content-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: multipart/mixed; boundary=zz\n\n--zz\n\nx\n--zz--\n--zz--\n"),
        ("boundary with specials",
         "Content-Type: multipart/mixed; boundary=\"a b'(c)+,-./:=?\"\n\n--a b'(c)+,-./:=?\n\nx\n--a b'(c)+,-./:=?--\n"),
        ("empty input", ""),
        ("headers only", "Subject: x\nContent-Type: text/plain"),
        ("no header at all", "just a body line\n\nand more\n"),
        ("multipart with base64 transfer encoding is still split",
         "Content-Type: multipart/mixed; boundary=zz\nContent-Transfer-Encoding: base64\n\n--zz\n\nx\n--zz--\n"),
        ("NUL bytes in bodies",
         "Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\na\u{0}b\n--zz\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n\u{0}\u{0}\n--zz--\n"),
        ("invalid base64 body",
         "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!Zm9v*\nYmFy===\n@\n"),
    ]

    @Test(arguments: MIMETests.oddMessages, [false, true])
    func oddMessagesRoundTrip(_ item: (String, String), crlf: Bool) throws {
        let text = crlf ? crlfText(item.1) : item.1
        let m = try MIMEEntity.parse(mb(text))
        #expect(m.serialized() == mb(text), "\(item.0)")
        let canonical = m.canonicalCRLF()
        #expect(onlyCRLF(canonical.serialized()), "\(item.0)")
        let reparsed = try MIMEEntity.parse(canonical.serialized())
        #expect(shape(reparsed) == shape(m), "\(item.0)")
        for p in m.parts where !p.isMultipart { _ = try p.decodedBody() }
    }

    @Test func oddMessagesParseAsDocumented() throws {
        func parse(_ s: String) throws -> MIMEEntity { try MIMEEntity.parse(mb(s)) }

        let noBoundary = try parse(Self.oddMessages[0].1)
        #expect(!noBoundary.isMultipart && noBoundary.parts.isEmpty)
        #expect(noBoundary.body == mb("no boundary param\n--x\nstuff\n"))

        let never = try parse(Self.oddMessages[2].1)
        #expect(never.isMultipart && never.parts.isEmpty)
        #expect(never.preamble == mb("preamble only\n--x\n--zzz\n"))

        let unclosed = try parse(Self.oddMessages[3].1)
        #expect(unclosed.parts.count == 2 && unclosed.epilogue.isEmpty)
        #expect(try unclosed.parts[1].decodedBody() == mb("part two, no close\n"))
        #expect(try unclosed.parts[0].decodedBody() == mb("part one"))

        let padded = try parse(Self.oddMessages[4].1)
        #expect(padded.parts.count == 1 && padded.epilogue == mb("epilogue\n"))

        let empty = try parse(Self.oddMessages[5].1)
        #expect(empty.parts.count == 2)
        #expect(empty.parts.allSatisfy { $0.body.isEmpty })

        let closeFirst = try parse(Self.oddMessages[6].1)
        #expect(closeFirst.parts.isEmpty && closeFirst.preamble == mb("pre") && closeFirst.epilogue == mb("epi\n"))

        let junk = try parse(Self.oddMessages[7].1)
        #expect(junk.parts.count == 1)
        #expect(junk.parts[0].body == mb("--zzjunk\n--zz junk\n--zz--junk"))

        let noHeader = try parse(Self.oddMessages[8].1)
        #expect(noHeader.parts[0].header.fields.isEmpty)
        #expect(noHeader.parts[0].contentType == .defaultPlain)
        #expect(noHeader.parts[0].body == mb("plain text, no headers"))

        let rfc822 = try parse(Self.oddMessages[12].1)
        let inner = rfc822.parts[0]
        #expect(inner.isEncapsulatedMessage && inner.parts.count == 1)
        #expect(inner.parts[0].header["Subject"] == "inner")
        #expect(inner.parts[0].parts.count == 1)

        let b64message = try parse(Self.oddMessages[13].1)
        #expect(!b64message.isEncapsulatedMessage)
        #expect(try b64message.decodedBody() == mb("Subject: x\r\n\r\nhi"))

        let digest = try parse(Self.oddMessages[14].1)
        #expect(digest.parts[0].contentType.mimeType == "message/rfc822")
        #expect(digest.parts[0].parts.first?.header["Subject"] == "a")
        #expect(digest.parts[1].contentType.mimeType == "text/plain")

        let specials = try parse(Self.oddMessages[16].1)
        #expect(specials.parts.count == 1 && specials.epilogue.isEmpty)

        let nul = try parse(Self.oddMessages[21].1)
        #expect(try nul.parts[0].decodedBody() == [0x61, 0x00, 0x62])
        #expect(try nul.parts[1].decodedBody() == [0x00, 0x00])

        let badBase64 = try parse(Self.oddMessages[22].1)
        #expect(try badBase64.decodedBody() == mb("foobar"))
    }

    @Test(arguments: [
        // Mixed line ends in one message.
        "Content-Type: multipart/mixed; boundary=zz\r\n\r\npre\n--zz\r\nContent-Type: text/plain\n\nA\r\n--zz\nB\n--zz--\r\nepi",
        // Bare CRs are data, never line ends: "--zz\r\r" is not a delimiter.
        "Content-Type: multipart/mixed; boundary=zz\n\n--zz\r\rX\n--zz\n\rY\r--zz--\r\n--zz--\n",
        "Subject: bare\rCR\n\nbody\rwith\r\rCRs\r",
        // A delimiter whose line break is CRLF while the content's is LF.
        "Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\nline\n\r\n--zz--\n",
    ])
    func mixedLineEndsRoundTrip(_ text: String) throws {
        let m = try MIMEEntity.parse(mb(text))
        #expect(m.serialized() == mb(text))
    }

    @Test func bareCRIsNotALineEnd() throws {
        let m = try MIMEEntity.parse(mb("Content-Type: multipart/mixed; boundary=zz\n\n--zz\r\rX\n--zz\n\rY\r--zz--\r\n--zz--\n"))
        // "--zz\r\r" and "--zz--\r" followed by more are not delimiters; "\r\n" before one is its line end.
        #expect(m.parts.count == 1)
        #expect(m.preamble == mb("--zz\r\rX"))
        #expect(m.parts[0].body == mb("\rY\r--zz--"))
        #expect(m.epilogue.isEmpty)
    }

    @Test func appendedPartsGetDelimiters() throws {
        var m = try MIMEEntity.parse(mb("Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\none\n--zz--\n"))
        let extra = try MIMEEntity.parse(mb("\ntwo"))
        m.parts.append(extra)
        #expect(m.serialized() == mb("Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\none\n--zz\n\ntwo\n--zz--\n"))
        let again = try MIMEEntity.parse(m.serialized())
        #expect(again.parts.count == 2)
    }

    @Test func deepNestingThrowsMalformed() throws {
        var text = ""
        for i in 0..<1000 { text += "Content-Type: multipart/mixed; boundary=b\(i)\n\n--b\(i)\n" }
        text += "\nleaf\n"
        for i in (0..<1000).reversed() { text += "--b\(i)--\n" }
        #expect(throws: MessageError.malformed("MIME nesting deeper than 64 levels")) {
            try MIMEEntity.parse(mb(text))
        }
        // A caller cannot ask for more depth than the parser's stack budget allows.
        #expect(throws: MessageError.malformed("MIME nesting deeper than \(MIMEEntity.depthLimit) levels")) {
            try MIMEEntity.parse(mb(text), maxDepth: 100_000)
        }
        // rfc822 encapsulation counts as nesting too.
        let messages = String(repeating: "Content-Type: message/rfc822\n\n", count: 1000) + "hi\n"
        #expect(throws: MessageError.malformed("MIME nesting deeper than 64 levels")) {
            try MIMEEntity.parse(mb(messages))
        }
    }

    @Test func nestingWithinTheLimitRoundTrips() throws {
        var text = ""
        for i in 0..<60 { text += "Content-Type: multipart/mixed; boundary=b\(i)\r\n\r\n--b\(i)\r\n" }
        text += "\r\nleaf\r\n"
        for i in (0..<60).reversed() { text += "--b\(i)--\r\n" }
        let m = try MIMEEntity.parse(mb(text))
        #expect(m.serialized() == mb(text))
        var e = m
        var depth = 0
        while let first = e.parts.first { e = first; depth += 1 }
        #expect(depth == 60)
        #expect(try e.decodedBody() == mb("leaf"))
    }

    @Test func manyPartsStayLinear() throws {
        // 50,000 tiny parts and a 2 MB body of short lines: parsing is one pass per level.
        let text = "Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
            + String(repeating: "--zz\r\n\r\nx\r\n", count: 50_000) + String(repeating: "--z\r\n", count: 300_000) + "--zz--\r\n"
        let m = try MIMEEntity.parse(mb(text))
        #expect(m.parts.count == 50_000)
        #expect(m.serialized() == mb(text))
    }

    @Test func megabyteHeaderLine() throws {
        let long = String(repeating: "a", count: 1 << 20)
        let text = "X-Long: \(long)\nContent-Type: multipart/mixed; boundary=zz; x-pad=\"\(long)\"\n\n--zz\nX-Part: \(long)\n\nbody\n--zz--\n"
        let m = try MIMEEntity.parse(mb(text))
        #expect(m.serialized() == mb(text))
        #expect(m.header["X-Long"]?.utf8.count == 1 << 20)
        #expect(m.contentType.parameter("x-pad")?.utf8.count == 1 << 20)
        #expect(m.parts.count == 1)
        #expect(m.parts[0].header["X-Part"]?.utf8.count == 1 << 20)
    }

    @Test func transferEncodingField() throws {
        func entity(_ cte: String) throws -> MIMEEntity {
            try MIMEEntity.parse(mb("Content-Transfer-Encoding: \(cte)\n\nZm9v\n"))
        }
        #expect(try entity("Base64 (comment)").transferEncoding == "base64")
        #expect(try entity("").transferEncoding == "7bit")
        #expect(try MIMEEntity.parse(mb("\nx")).transferEncoding == "7bit")
        #expect(try entity("8BIT").decodedBody() == mb("Zm9v\n"))
        #expect(throws: MessageError.malformed("unknown Content-Transfer-Encoding \"x-uuencode\"")) {
            try entity("x-uuencode").decodedBody()
        }
    }

    // MARK: Content-Type and RFC 2231

    @Test(arguments: [
        ("text/plain", "text/plain", [String: String]()),
        ("TEXT/HTML; CHARSET=\"UTF-8\"", "text/html", ["charset": "UTF-8"]),
        ("text/plain; charset=us-ascii (Plain text)", "text/plain", ["charset": "us-ascii"]),
        ("(comment) multipart/mixed (c2); boundary=\"simple boundary\"", "multipart/mixed", ["boundary": "simple boundary"]),
        ("text/plain; charset=\"a\\\"b\\\\c\"", "text/plain", ["charset": "a\"b\\c"]),
        ("text / plain ; format = flowed", "text/plain", ["format": "flowed"]),
        ("text/plain; (nested (comment) here) charset=utf-8", "text/plain", ["charset": "utf-8"]),
        ("text/plain;;; charset=x; junk; =y; charset=second", "text/plain", ["charset": "x"]),
        ("text/plain; name=\"semi;colon (not a comment)\"", "text/plain", ["name": "semi;colon (not a comment)"]),
        ("multipart/mixed; boundary=\"unterminated", "multipart/mixed", ["boundary": "unterminated"]),
        ("text/plain; name=unquoted value", "text/plain", ["name": "unquoted value"]),
        ("text/plain; (unterminated comment; charset=x", "text/plain", [:]),
        ("garbage", "text/plain", ["charset": "us-ascii"]),
        ("", "text/plain", ["charset": "us-ascii"]),
        ("text/", "text/plain", ["charset": "us-ascii"]),
        ("/plain; charset=utf-8", "text/plain", ["charset": "us-ascii"]),
        ("text/plain/extra", "text/plain", ["charset": "us-ascii"]),
        ("text; charset=utf-8", "text/plain", ["charset": "us-ascii"]),
    ])
    func contentTypeParsing(_ value: String, _ mimeType: String, _ parameters: [String: String]) {
        let ct = ContentType(parsing: value)
        #expect(ct.mimeType == mimeType)
        #expect(ct.parameters == parameters)
    }

    @Test(arguments: [
        // RFC 2231 section 3.
        ("message/external-body; access-type=URL;\r\n URL*0=\"ftp://\";\r\n URL*1=\"cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar\"",
         "url", "ftp://cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar"),
        // RFC 2231 section 4.
        ("application/x-stuff; title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A",
         "title", "This is ***fun***"),
        // RFC 2231 section 4.1.
        ("application/x-stuff; title*0*=us-ascii'en'This%20is%20even%20more%20; title*1*=%2A%2A%2Afun%2A%2A%2A%20; title*2=\"isn't it!\"",
         "title", "This is even more ***fun*** isn't it!"),
        ("text/plain; name*=utf-8'en'%E2%82%AC", "name", "€"),
        ("text/plain; NAME*=UTF-8''%e2%82%ac", "name", "€"),
        ("application/octet-stream; name*=iso-8859-1''%E9t%E9.txt", "name", "été.txt"),
        ("application/octet-stream; name*=windows-1252''%80%20sign", "name", "€ sign"),
        ("x/y; n*1=b; n*0=a; n*2=c", "n", "abc"),
        ("x/y; n*0*=utf-8''%E2%82; n*1*=%AC", "n", "€"),
        ("x/y; n*0=a; n*5=b", "n", "ab"),
        ("x/y; filename=fallback.txt; filename*=utf-8''%C3%A9.txt", "filename", "é.txt"),
        ("x/y; filename*=utf-8''%C3%A9.txt; filename=fallback.txt", "filename", "é.txt"),
        ("x/y; n*=utf-8''100%zz%4", "n", "100%zz%4"),
        ("x/y; n*=x-unknown''abc", "n", "abc"),
        ("x/y; n*=no-quotes%41", "n", "no-quotesA"),
        ("x/y; n*=\"utf-8''quoted%21\"", "n", "quoted!"),
        ("x/y; n*99999=a", "n*99999", "a"),
        ("x/y; name=\"=?UTF-8?B?w6kudHh0?=\"", "name", "é.txt"),
        ("x/y; boundary=\"=?UTF-8?B?w6kudHh0?=\"", "boundary", "=?UTF-8?B?w6kudHh0?="),
    ])
    func rfc2231Parameters(_ value: String, _ name: String, _ expected: String) throws {
        // Values reach the parser unfolded, as HeaderField.unfoldedValue gives them.
        let field = try HeaderSection.parse(mb("Content-Type: \(value)\r\n\r\n")).fields[0]
        #expect(ContentType(parsing: field.unfoldedValue).parameter(name) == expected)
    }

    @Test func contentTypeSerialisation() throws {
        let simple = ContentType(type: "Text", subtype: "Plain", parameters: ["Charset": "utf-8", "format": "flowed"])
        #expect(simple.headerValue == "text/plain; charset=utf-8; format=flowed")
        #expect(ContentType(type: "a", subtype: "b", parameters: ["name": "€"]).headerValue == "a/b; name*=utf-8''%E2%82%AC")
        #expect(ContentType(type: "a", subtype: "b", parameters: ["x": "has space \"q\""]).headerValue == "a/b; x=\"has space \\\"q\\\"\"")
        #expect(ContentType(type: "a", subtype: "b", parameters: ["bad;name": "v", "x*": "v"]).headerValue == "a/b")

        let hard = ContentType(type: "application", subtype: "pdf", parameters: [
            "name": "résumé très long nom de fichier pour tester les continuations RFC 2231.pdf",
            "x-ascii": String(repeating: "long ascii value ", count: 8),
            "x-token": "token",
            "x-empty": "",
            "boundary": String(repeating: "b", count: 70),
        ])
        let reparsed = ContentType(parsing: hard.headerValue)
        #expect(reparsed == hard)

        let cd = ContentDisposition(disposition: "Attachment", parameters: ["filename": "naïve.txt"])
        #expect(cd.headerValue == "attachment; filename*=utf-8''na%C3%AFve.txt")
        #expect(ContentDisposition(parsing: cd.headerValue) == cd)
        #expect(ContentDisposition(parsing: "inline").isInline)
        #expect(ContentDisposition(parsing: "; filename=x.exe").disposition == "attachment")
        #expect(ContentDisposition(parsing: "; filename=x.exe").filename == "x.exe")
        #expect(ContentDisposition(parsing: "INLINE; FileName=\"a b.txt\"").filename == "a b.txt")
    }

    // MARK: Transfer encodings

    @Test(arguments: [
        // RFC 2045 6.7 example of soft line breaks.
        ("Now's the time =\r\nfor all folk to come=\r\n to the aid of their country.",
         "Now's the time for all folk to come to the aid of their country."),
        ("a=3Db", "a=b"),
        ("trailing   \r\nnext\t \nlast  ", "trailing\r\nnext\nlast"),
        ("bad =ZZ escape and =4", "bad =ZZ escape and =4"),
        ("lower =c3=a9", "lower é"),
        ("end=", "end"),
        ("soft = \r\nbreak", "soft break"),
        ("line1\nline2\r\n", "line1\nline2\r\n"),
        ("bare\rCR=0D", "bare\rCR\r"),
        ("=\n=\n", ""),
        ("", ""),
    ])
    func quotedPrintableDecoding(_ input: String, _ expected: String) {
        #expect(TransferDecoding.quotedPrintable(mb(input)) == mb(expected))
    }

    @Test(arguments: [
        ("Hello, world", "Hello, world", true),
        ("a=b", "a=3Db", true),
        ("trailing space \ntab\t\r\nend ", "trailing space=20\r\ntab=09\r\nend=20", true),
        ("é", "=C3=A9", true),
        ("From here\nFrom", "=46rom here\r\nFrom", true),
        ("a\r\nb", "a=0D=0Ab", false),
        ("a\nb\n", "a\r\nb\r\n", true),
        ("", "", true),
    ])
    func quotedPrintableEncoding(_ input: String, _ expected: String, _ textMode: Bool) {
        #expect(TransferEncoding.encodeQuotedPrintable(mb(input), textMode: textMode) == mb(expected))
    }

    @Test func quotedPrintableLongLinesAndRoundTrip() {
        let long = String(repeating: "x", count: 200) + " " + String(repeating: "é", count: 60) + " "
        let encoded = TransferEncoding.encodeQuotedPrintable(mb(long + "\r\n" + long))
        #expect(longestLine(encoded) <= 76)
        #expect(onlyCRLF(encoded))
        #expect(TransferDecoding.quotedPrintable(encoded) == mb(long + "\r\n" + long))

        var rng = TestRNG(state: 42)
        for length in [0, 1, 75, 76, 77, 300, 5000] {
            let data = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let binary = TransferEncoding.encodeQuotedPrintable(data, textMode: false)
            #expect(TransferDecoding.quotedPrintable(binary) == data)
            #expect(longestLine(binary) <= 76 && onlyCRLF(binary))
            // Text: printable ASCII, spaces and CRLF line ends come back exactly.
            let text = (0..<length).map { _ -> UInt8 in
                let r = UInt8.random(in: 0...99, using: &rng)
                return r < 5 ? 0x0A : r < 20 ? 0x20 : r < 25 ? 0x09 : UInt8.random(in: 33...126, using: &rng)
            }
            let canonicalText = MIMEEntity.crlf(text[...])
            let encodedText = TransferEncoding.encodeQuotedPrintable(canonicalText)
            #expect(TransferDecoding.quotedPrintable(encodedText) == canonicalText)
            #expect(longestLine(encodedText) <= 76 && onlyCRLF(encodedText))
        }
    }

    @Test(arguments: [
        // RFC 4648 section 10 vectors.
        ("", ""), ("f", "Zg==\r\n"), ("fo", "Zm8=\r\n"), ("foo", "Zm9v\r\n"),
        ("foob", "Zm9vYg==\r\n"), ("fooba", "Zm9vYmE=\r\n"), ("foobar", "Zm9vYmFy\r\n"),
    ])
    func base64Vectors(_ plain: String, _ encoded: String) {
        #expect(TransferEncoding.encodeBase64(mb(plain)) == mb(encoded))
        #expect(TransferDecoding.base64(mb(encoded)) == mb(plain))
    }

    @Test func base64LinesAndLeniency() {
        let one = TransferEncoding.encodeBase64(Bytes(repeating: 0xAB, count: 57))
        #expect(one.count == 78 && one.suffix(2) == [0x0D, 0x0A])
        var rng = TestRNG(state: 7)
        let data = (0..<10_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let encoded = TransferEncoding.encodeBase64(data)
        #expect(longestLine(encoded) == 76 && onlyCRLF(encoded))
        #expect(TransferDecoding.base64(encoded) == data)
        // RFC 2045 6.8: characters outside the alphabet are ignored.
        #expect(TransferDecoding.base64(mb("Zm9v!!\r\nYm*Fy")) == mb("foobar"))
        #expect(TransferDecoding.base64(mb("Zm9vYg")) == mb("foob"))
        #expect(TransferDecoding.base64(mb("@@@")) == [])
        #expect(TransferDecoding.base64(mb("Zg==Zm9v")) == mb("f"))
        #expect(TransferEncoding.base64.decode(mb("Zm9v\n")) == mb("foo"))
        #expect(TransferEncoding(headerValue: " Quoted-Printable ") == .quotedPrintable)
        #expect(TransferEncoding(headerValue: "x-uuencode") == nil)
    }

    // MARK: Builder

    private func checkCanonical(_ bytes: Bytes) {
        #expect(onlyCRLF(bytes))
        #expect(longestLine(bytes) <= 78)
    }

    @Test func builderLeaves() throws {
        var rng = TestRNG(state: 1)
        let binary = (0..<3000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let attachment = try MIMEBuilder.leaf(
            contentType: ContentType(type: "application", subtype: "octet-stream",
                                     parameters: ["name": "ein sehr langer Dateiname mit Umlauten äöü und noch mehr Text.bin"]),
            transferEncoding: .base64, body: binary,
            extraFields: [("Content-Disposition", ContentDisposition(disposition: "attachment", parameters: [
                "filename": "ein sehr langer Dateiname mit Umlauten äöü und noch mehr Text.bin"]).headerValue)])
        let bytes = attachment.serialized()
        checkCanonical(bytes)
        let again = try MIMEEntity.parse(bytes)
        #expect(try again.decodedBody() == binary)
        #expect(again.contentType == attachment.contentType)
        #expect(again.contentType.parameter("name") == "ein sehr langer Dateiname mit Umlauten äöü und noch mehr Text.bin")
        #expect(again.contentDisposition?.filename == "ein sehr langer Dateiname mit Umlauten äöü und noch mehr Text.bin")
        #expect(again.header.fields.map(\.name) == ["Content-Type", "Content-Transfer-Encoding", "Content-Disposition"])

        let text = "Grüße! " + String(repeating: "A long line of text that goes on. ", count: 10) + "\r\nFrom me.\r\n"
        let qp = try MIMEBuilder.leaf(contentType: ContentType(type: "text", subtype: "plain", parameters: ["charset": "utf-8"]),
                                      transferEncoding: .quotedPrintable, body: mb(text))
        checkCanonical(qp.serialized())
        #expect(try MIMEEntity.parse(qp.serialized()).decodedBody() == mb(text))
        #expect(qp.transferEncoding == "quoted-printable")

        let seven = try MIMEBuilder.leaf(contentType: ContentType(type: "application", subtype: "pgp-encrypted"),
                                         transferEncoding: .sevenBit, body: mb("Version: 1\n"))
        #expect(seven.serialized() == mb("Content-Type: application/pgp-encrypted\r\nContent-Transfer-Encoding: 7bit\r\n\r\nVersion: 1\r\n"))
        #expect(throws: MessageError.self) {
            try MIMEBuilder.leaf(contentType: .defaultPlain, transferEncoding: .sevenBit, body: mb("é"))
        }
        #expect(throws: MessageError.self) {
            try MIMEBuilder.leaf(contentType: .defaultPlain, transferEncoding: .eightBit, body: [0x61, 0x0D, 0x62])
        }
        #expect(throws: MessageError.self) {
            try MIMEBuilder.leaf(contentType: .defaultPlain, transferEncoding: .binary, body: [])
        }
        #expect(throws: MessageError.self) {
            try MIMEBuilder.leaf(contentType: .defaultPlain, transferEncoding: .base64, body: [], extraFields: [("X-Bad", "a\r\nb")])
        }
    }

    @Test func builderMultipartSigned() throws {
        // A part parsed from LF-only input is canonicalised when it goes in.
        let signedPart = try MIMEEntity.parse(mb(realWorldLF))
        let signature = try MIMEBuilder.leaf(
            contentType: ContentType(type: "application", subtype: "pgp-signature", parameters: ["name": "signature.asc"]),
            transferEncoding: .sevenBit, body: mb("-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n"),
            extraFields: [("Content-Description", "OpenPGP digital signature")])
        let signed = try MIMEBuilder.multipart(
            subtype: "signed",
            parameters: ["protocol": "application/pgp-signature", "micalg": "pgp-sha256", "Boundary": "ignored"],
            parts: [signedPart, signature])
        let bytes = signed.serialized()
        checkCanonical(bytes)

        let boundary = try #require(signed.contentType.boundary)
        #expect(boundary.hasPrefix("=_sl_") && boundary.count == 29)
        #expect(signed.contentType.parameter("protocol") == "application/pgp-signature")
        #expect(signed.contentType.parameter("micalg") == "pgp-sha256")
        #expect(signed.preamble.isEmpty && signed.epilogue.isEmpty)

        let again = try MIMEEntity.parse(bytes)
        #expect(again.parts.count == 2)
        #expect(again.parts[0].serialized() == signedPart.canonicalCRLF().serialized())
        #expect(again.parts[0].serialized() == mb(crlfText(realWorldLF)))
        #expect(try again.parts[1].decodedBody() == mb("-----BEGIN PGP SIGNATURE-----\r\n\r\nabc\r\n-----END PGP SIGNATURE-----\r\n"))
        #expect(shape(again) == "multipart/signed(" + shape(signedPart) + ",application/pgp-signature)")
        #expect(!MIMEBuilder.contains(signedPart.serialized(), mb(boundary)))

        // Nested: an encrypted structure inside mixed.
        let mixed = try MIMEBuilder.multipart(subtype: "mixed", parts: [signed, signature])
        checkCanonical(mixed.serialized())
        #expect(mixed.parts[0].contentType.boundary == boundary)
        #expect(mixed.contentType.boundary != boundary)
    }

    @Test func boundariesAreFreshAndFolded() throws {
        let boundaries = Set((0..<100).map { _ in MIMEBuilder.makeBoundary() })
        #expect(boundaries.count == 100)
        #expect(boundaries.allSatisfy { $0.utf8.allSatisfy { MIMEParameters.isTokenByte($0) || $0 == UInt8(ascii: "=") } })
        let folded = MIMEBuilder.fold(mb("Content-Type: multipart/signed; boundary=\"=_sl_ABCDEFGHIJKLMNOPQRSTUVWX\"; micalg=pgp-sha256; protocol=\"application/pgp-signature\""))
        #expect(longestLine(folded) <= 78)
        #expect(!folded.contains(0x0A) || folded.contains(0x0D))
        let field = try HeaderSection.parse(folded + [0x0D, 0x0A, 0x0D, 0x0A]).fields[0]
        #expect(ContentType(parsing: field.unfoldedValue).parameter("protocol") == "application/pgp-signature")
    }
}
