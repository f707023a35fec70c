import Foundation
import Testing
@testable import SLMessage

// Open tracking's image in a message's HTML text: found by streaming over the
// spooled body exactly where the in-memory parser sees the first HTML text,
// inserted in the part's own transfer encoding and charset, every other byte of
// the message unchanged.

private func mb(_ s: String) -> Bytes { Array(s.utf8) }
private let url = "https://portal.clinic.test/sl-escrow/t/Zk9_-abcdefghijklmnopqrstuvwxyzABCDEFGHIJK"
private let tag = RemoteImage.tag(url)

/// The message with the image, or nil when it takes none.
private func inserted(_ bytes: Bytes) throws -> Bytes? {
    let message = try Message(bytes: bytes)
    guard let site = try RemoteImage.site(in: message) else { return nil }
    return try RemoteImage.inserting(url, at: site, into: message).bytes()
}

/// What the insertion must give, worked out on the in-memory tree: the first
/// text/html leaf outside attachments, attached messages and signed parts, its
/// content edited, the tree serialised (which gives back every other byte).
private func expected(_ bytes: Bytes) -> Bytes? {
    guard let root = try? MIMEEntity.parse(bytes), let path = firstHTMLText(root) else { return nil }
    var leaf = root
    for i in path { leaf = leaf.parts[i] }
    // An empty part whose blank line the next delimiter took: nothing to edit.
    if leaf.header.separator.isEmpty && leaf.body.isEmpty { return nil }
    guard TransferEncoding(headerValue: leaf.header["Content-Transfer-Encoding"] ?? "") != nil,
          !(leaf.contentType.charset ?? "").hasPrefix("utf-16") else { return nil }
    func replaced(_ e: MIMEEntity, _ path: ArraySlice<Int>) -> MIMEEntity {
        var e = e
        if let i = path.first { e.parts[i] = replaced(e.parts[i], path.dropFirst()) } else {
            e.body = RemoteImage.edited(e.body, header: e.header, tag: tag)
        }
        return e
    }
    return replaced(root, path[...]).serialized()
}

private func firstHTMLText(_ e: MIMEEntity) -> [Int]? {
    if e.contentDisposition?.disposition == "attachment" { return nil }
    if e.contentType.mimeType == "text/html" && !e.isMultipart && !e.isEncapsulatedMessage { return [] }
    guard e.isMultipart, e.contentType.subtype != "signed" else { return nil }
    for (i, p) in e.parts.enumerated() {
        if let rest = firstHTMLText(p) { return [i] + rest }
    }
    return nil
}

private func crlf(_ s: String) -> String { s.replacingOccurrences(of: "\n", with: "\r\n") }

/// A message with text and HTML alternatives and a PDF attachment, with LF line
/// ends; the HTML part in `encoding`, its content `html` in `charset`.
private func mixed(html: Bytes, encoding: String, charset: String = "utf-8") -> Bytes {
    var body: Bytes
    switch encoding {
    case "base64": body = mb(Data(html).base64EncodedString(options: [.lineLength76Characters, .endLineWithLineFeed]))
    case "quoted-printable": body = TransferEncoding.encodeQuotedPrintable(html).filter { $0 != 0x0D }
    default: body = html
    }
    let text = """
    From: Alice <alice@clinic.test>
    To: bob@example.org
    Subject: Results
    MIME-Version: 1.0
    Content-Type: multipart/mixed; boundary="outer"

    This is a multi-part message in MIME format.
    --outer
    Content-Type: multipart/alternative; boundary=inner

    --inner
    Content-Type: text/plain; charset=utf-8
    Content-Transfer-Encoding: quoted-printable

    Gr=C3=BC=C3=9Fe, Bob
    --inner
    Content-Type: text/html; charset=\(charset)
    Content-Transfer-Encoding: \(encoding)

    @@
    --inner--

    --outer
    Content-Type: application/pdf; name="r.pdf"
    Content-Disposition: attachment; filename="r.pdf"
    Content-Transfer-Encoding: base64

    JVBERi0xLjQKJcOkw7zDtsOfCg==
    --outer--
    epilogue

    """
    var out = mb(text)
    out.replaceSubrange(out.firstRange(of: mb("@@"))!, with: body)
    return out
}

private func crlf(_ b: Bytes) -> Bytes { mb(crlf(String(decoding: b, as: UTF8.self))) }

private let page = "<html><head><title>Lab</title></head>\n<body>\n<p>Grüße, Bob: all normal.</p>\n</body>\n</html>\n"

@Suite struct RemoteImageTests {
    @Test(arguments: ["7bit", "8bit", "quoted-printable", "base64", "binary"], [false, true])
    func theImageGoesIntoTheHTMLTextAndNothingElseChanges(_ encoding: String, _ withCRLF: Bool) throws {
        let html = encoding == "7bit" ? page.replacingOccurrences(of: "Grüße", with: "Gruesse") : page
        let lf = mixed(html: mb(html), encoding: encoding)
        let before = withCRLF ? crlf(lf) : lf
        let after = try #require(try inserted(before))
        #expect(after == expected(before), "every byte but the HTML part's content as it was")

        let old = try MIMEEntity.parse(before), new = try MIMEEntity.parse(after)
        let oldHTML = old.parts[0].parts[1], newHTML = new.parts[0].parts[1]
        #expect(newHTML.header.bytes == oldHTML.header.bytes, "charset and transfer encoding kept")
        #expect(new.parts[0].parts[0].serialized() == old.parts[0].parts[0].serialized())
        #expect(new.parts[1].serialized() == old.parts[1].serialized())
        #expect(new.preamble == old.preamble && new.epilogue == old.epilogue)
        // The content is the old one with the tag on a line of its own before </body>.
        let oldText = String(decoding: try oldHTML.decodedBody(), as: UTF8.self)
        let eol = oldText.contains("\r\n") ? "\r\n" : "\n"
        let decodedText = String(decoding: try newHTML.decodedBody(), as: UTF8.self)
        let expectedText = oldText
            .replacingOccurrences(of: "</body>", with: "\(eol)\(String(decoding: tag, as: UTF8.self))\(eol)</body>")
        #expect(decodedText == expectedText)
        if encoding == "7bit" { #expect(after.allSatisfy { $0 < 0x80 }) }
        for line in after.split(separator: 0x0A) { #expect(line.count <= 998) }
    }

    /// Latin-1 stays Latin-1: the edit is on bytes, never through a string.
    @Test(arguments: ["8bit", "quoted-printable", "base64"])
    func aCharsetOtherThanUTF8IsKept(_ encoding: String) throws {
        var latin1 = mb("<p>Gr")
        latin1 += [0xFC, 0xDF]
        latin1 += mb("e</p></BODY ></html>")
        let before = mixed(html: latin1, encoding: encoding, charset: "iso-8859-1")
        let after = try #require(try inserted(before))
        #expect(after == expected(before))
        let decoded = try MIMEEntity.parse(after).parts[0].parts[1].decodedBody()
        #expect(decoded == mb("<p>Gr") + [0xFC, 0xDF] + mb("e</p>\n") + tag + mb("\n</BODY ></html>"))
    }

    @Test func aMessageThatIsHTMLItselfTakesTheImageAtTheEnd() throws {
        let before = mb("From: a@clinic.test\nContent-Type: text/html\n\n<p>No body tag</p>\n")
        let after = try #require(try inserted(before))
        #expect(after == mb("From: a@clinic.test\nContent-Type: text/html\n\n<p>No body tag</p>\n\n") + tag + mb("\n"))
    }

    @Test(arguments: [
        ("no HTML at all", "Content-Type: text/plain\n\n<html><body>looks like it</body></html>\n"),
        ("HTML only as an attachment", """
            Content-Type: multipart/mixed; boundary=b

            --b
            Content-Type: text/plain

            see the file
            --b
            Content-Type: text/html
            Content-Disposition: attachment; filename="page.html"

            <html><body>attached</body></html>
            --b--

            """),
        ("HTML only in an attachment's multipart", """
            Content-Type: multipart/mixed; boundary=b

            --b
            Content-Type: multipart/alternative; boundary=c
            Content-Disposition: attachment

            --c
            Content-Type: text/html

            <html><body>x</body></html>
            --c--
            --b--

            """),
        ("HTML only in an attached message", """
            Content-Type: multipart/mixed; boundary=b

            --b
            Content-Type: message/rfc822

            Subject: forwarded
            Content-Type: text/html

            <html><body>forwarded</body></html>
            --b--

            """),
        ("HTML in a signed part", """
            Content-Type: multipart/signed; protocol="application/pgp-signature"; boundary=s

            --s
            Content-Type: text/html

            <html><body>signed</body></html>
            --s
            Content-Type: application/pgp-signature

            -----BEGIN PGP SIGNATURE-----
            --s--

            """),
        ("HTML in UTF-16", "Content-Type: text/html; charset=UTF-16\nContent-Transfer-Encoding: base64\n\n//48AGgAdABtAGwAPgA=\n"),
        ("an unknown transfer encoding", "Content-Type: text/html\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 x\n"),
        ("an HTML attachment as the whole message", "Content-Type: text/html\nContent-Disposition: attachment\n\n<html></html>\n"),
    ])
    func withoutAnHTMLTextTheMessageIsLeftAlone(_ what: String, _ text: String) throws {
        #expect(try inserted(mb("From: a@clinic.test\n" + text)) == nil, "\(what)")
    }

    @Test func theURLIsEscapedForItsAttribute() {
        #expect(RemoteImage.tag("https://p.test/a\"b&c<d é") == mb("<img src=\"https://p.test/a&quot;b&amp;c&lt;d%20%C3%A9\" width=\"1\" height=\"1\" alt=\"\">"))
    }

    /// A large message: the body is read in chunks, the new one spooled to a file,
    /// and the HTML part found though its lines cross chunk boundaries.
    @Test func aLargeMessageStaysSpooled() throws {
        let blob = Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            .base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        let padding = String(repeating: "<p>filler line of the page</p>\r\n", count: 20_000)
        let text = crlf(String(decoding: mixed(html: mb("<html><body>\(padding)</body></html>"), encoding: "8bit"), as: UTF8.self))
            .replacingOccurrences(of: "JVBERi0xLjQKJcOkw7zDtsOfCg==", with: blob)
        let message = try Message(bytes: mb(text))
        let site = try #require(try RemoteImage.site(in: message))
        let out = try RemoteImage.inserting(url, at: site, into: message)
        #expect(!out.body.isInMemory && message.body.count > 4 << 20)
        #expect(try out.bytes() == expected(mb(text)))
    }

    /// The streaming search against the in-memory parser, on messages made to be
    /// odd: every kind of part, reused and padded boundaries (padding longer than a
    /// line is kept), missing close delimiters, headers without a blank line,
    /// preambles that almost hold a delimiter, mixed line ends, bodies large enough
    /// to spool.
    @Test func theStreamingSearchFindsWhatTheParserFinds() throws {
        var found = 0
        for seed in 0..<1000 {
            var maker = OddMessages(seed: UInt64(seed))
            let bytes = maker.message()
            let mine = try inserted(bytes), theirs = expected(bytes)
            #expect(mine == theirs, "seed \(seed): \(String(decoding: bytes.prefix(3000), as: UTF8.self))")
            if mine != nil { found += 1 }
        }
        #expect(found > 200, "too few messages with an HTML text to prove much: \(found)")
    }
}

/// Random MIME messages, reproducible by seed.
private struct OddMessages {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1 }

    mutating func next(_ n: Int) -> Int {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int((state >> 33) % UInt64(n))
    }
    mutating func chance(_ percent: Int) -> Bool { next(100) < percent }
    mutating func pick<T>(_ options: [T]) -> T { options[next(options.count)] }

    mutating func message() -> Bytes {
        let text = "From: a@clinic.test\nSubject: odd\nMIME-Version: 1.0\n" + entity(depth: 0, boundaries: [])
        // Line ends: all LF, all CRLF, or mixed line by line.
        let style = next(3)
        var out = Bytes()
        for b in text.utf8 {
            if b == 0x0A && (style == 1 || (style == 2 && chance(50))) { out.append(0x0D) }
            out.append(b)
        }
        return out
    }

    /// Header fields, the blank line (usually), the body.
    mutating func entity(depth: Int, boundaries: [String]) -> String {
        let kind = depth >= 4 ? next(6) : next(10)
        switch kind {
        case 0: return "Content-Type: text/plain\n\nplain text\n"
        case 1, 2, 3: return html()
        case 4: return "Content-Type: application/octet-stream\nContent-Disposition: attachment\nContent-Transfer-Encoding: base64\n\n"
            + attachmentBody()
        case 5: return pick(["", "\n", "no header here\n", "\nbare text\n"])
        case 6: return "Content-Type: message/rfc822\n\nSubject: inner\nContent-Type: text/html\n\n<html><body>inner</body></html>\n"
        default: return multipart(depth: depth, boundaries: boundaries)
        }
    }

    mutating func html() -> String {
        let disposition = chance(15) ? "Content-Disposition: attachment\n" : chance(10) ? "Content-Disposition: inline\n" : ""
        let charset = pick(["", "; charset=utf-8", "; charset=\"ISO-8859-1\"", "; charset=utf-16"])
        let encoding = pick(["", "7bit", "8bit", "quoted-printable", "base64", "x-unknown"])
        let content = pick(["<html><body><p>Hi</p></body></html>", "<p>no end tag", "<HTML><BODY>x</BODY></HTML>\n", ""])
        var body = content
        if encoding == "base64" { body = Data(content.utf8).base64EncodedString(options: .lineLength64Characters) }
        if encoding == "quoted-printable" { body = String(decoding: TransferEncoding.encodeQuotedPrintable(Array(content.utf8)), as: UTF8.self) }
        let cte = encoding.isEmpty ? "" : "Content-Transfer-Encoding: \(encoding)\n"
        // Usually a blank line ends the header; sometimes the first body line does,
        // or the next delimiter (an empty part).
        let separator = (body.hasPrefix("<") || body.isEmpty) && chance(15) ? "" : "\n"
        return "Content-Type: text/html\(charset)\n" + disposition + cte + separator + body + (chance(50) ? "\n" : "")
    }

    mutating func attachmentBody() -> String {
        if chance(8) {      // large enough to spool, in lines or as one long line
            let data = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            return data.base64EncodedString(options: chance(50) ? .lineLength76Characters : []) + "\n"
        }
        return "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v\n"
    }

    mutating func multipart(depth: Int, boundaries: [String]) -> String {
        let subtype = pick(["mixed", "alternative", "related", "mixed", "signed", "digest"])
        let boundary = !boundaries.isEmpty && chance(15) ? pick(boundaries) : pick(["b\(depth)", "zz", "outer=_x", "a b'(c)"])
        var text = "Content-Type: multipart/\(subtype);" + (chance(30) ? "\n boundary=\"\(boundary)\"\n" : " boundary=\"\(boundary)\"\n")
        if chance(10) { text += "Content-Disposition: attachment\n" }
        text += "\n"
        if chance(40) { text += pick(["preamble\n", "--\(boundary)junk\n", "--\(boundary) x\n"]) }
        for _ in 0..<next(4) {
            text += "--\(boundary)" + padding() + "\n" + entity(depth: depth + 1, boundaries: boundaries + [boundary])
            if chance(85) && !text.hasSuffix("\n") { text += "\n" }
        }
        if chance(80) { text += "--\(boundary)--" + padding() + "\n" }
        if chance(30) { text += pick(["epilogue\n", "--\(boundary)\n\nafter the close\n"]) }
        return text
    }

    /// Transport padding: none mostly; some, or more than a line is kept.
    mutating func padding() -> String {
        switch next(10) {
        case 0: return " \t "
        case 1: return String(repeating: " ", count: HTMLTextPart.LineAssembler.keep + 50)
        case 2: return String(repeating: " ", count: HTMLTextPart.LineAssembler.keep - 3) + "x"
        default: return ""
        }
    }
}
