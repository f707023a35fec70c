// An image reference put into a message's HTML text: sl-classify's open tracking.
// Only that part's content changes, decoded, edited and encoded again in its own
// transfer encoding; its header (charset, encoding) and every other byte of the
// message stay as they were, so a signature elsewhere in the message, an attachment
// or a text/plain alternative is untouched.

public enum RemoteImage {
    /// The message's HTML text if it can take an image: nil when there is none
    /// (see `HTMLTextPart.find`), when its transfer encoding is unknown, or when its
    /// charset does not write ASCII as ASCII (UTF-16, UTF-32), where an ASCII tag
    /// would be garbage.
    public static func site(in message: Message) throws -> HTMLTextPart? {
        guard let part = try HTMLTextPart.find(in: message),
              TransferEncoding(headerValue: part.header["Content-Transfer-Encoding"] ?? "") != nil else { return nil }
        let charset = HTMLTextPart.contentType(part.header, default: .defaultPlain).charset ?? ""
        guard !["utf-16", "utf-32", "ucs-2", "ucs-4", "unicode"].contains(where: charset.hasPrefix) else { return nil }
        return part
    }

    /// `message` with `<img src="url" width="1" height="1" alt="">` at the end of
    /// the HTML text `part` (from `site`), in a new body; the original body is not
    /// changed (other copies of the message share it).
    public static func inserting(_ url: String, at part: HTMLTextPart, into message: Message) throws -> Message {
        let tag = Self.tag(url)
        let out = Spool()
        var offset = 0, content = Bytes(), written = false
        func writeEdited() throws {
            try out.append(edited(content, header: part.header, tag: tag))
            written = true
        }
        try message.body.forEachChunk { chunk in
            let base = offset
            offset += chunk.count
            func piece(_ from: Int, _ to: Int) -> ArraySlice<UInt8> {
                let lo = max(from, base), hi = min(to, offset)
                return lo < hi ? chunk[(chunk.startIndex + lo - base)..<(chunk.startIndex + hi - base)] : []
            }
            try out.append(piece(0, part.bodyStart))
            content += piece(part.bodyStart, part.end)
            if !written && offset >= part.end { try writeEdited() }
            try out.append(piece(part.end, Int.max))
        }
        if !written { try writeEdited() }      // an empty body
        var copy = message
        copy.body = out
        return copy
    }

    /// The tag, the URL escaped for an attribute and any byte outside printable
    /// ASCII percent-encoded, so it fits a 7bit part.
    static func tag(_ url: String) -> Bytes {
        var ascii = ""
        for b in url.utf8 {
            ascii += b > 0x20 && b < 0x7F ? String(UnicodeScalar(b)) : "%" + String(b, radix: 16, uppercase: true).leftPadded(2)
        }
        return Array("<img src=\"\(HTMLText.escape(ascii))\" width=\"1\" height=\"1\" alt=\"\">".utf8)
    }

    /// The part's content with the tag on a line of its own before `</body>` (else
    /// before `</html>`, else at the end), in the part's transfer encoding. A line of
    /// its own: a 7bit or 8bit part keeps its lines under 998 octets.
    static func edited(_ body: Bytes, header: HeaderSection, tag: Bytes) -> Bytes {
        let encoding = TransferEncoding(headerValue: header["Content-Transfer-Encoding"] ?? "") ?? .binary
        var text = encoding.decode(body)
        let eol = firstLineEnding(text) ?? header.lineEnding
        let at = lastTag("</body", in: text) ?? lastTag("</html", in: text) ?? text.endIndex
        text.insert(contentsOf: eol + tag + eol, at: at)
        switch encoding {
        case .sevenBit, .eightBit, .binary:
            return text
        case .quotedPrintable:
            return withLineEnding(TransferEncoding.encodeQuotedPrintable(text), header.lineEnding)
        case .base64:
            // The encoder ends its last line; the part ended its own, or did not.
            var encoded = withLineEnding(TransferEncoding.encodeBase64(text), header.lineEnding)
            if body.lineTerminatorLength == 0 { encoded.removeLast(encoded.lineTerminatorLength) }
            return encoded
        }
    }

    static func firstLineEnding(_ text: Bytes) -> Bytes? {
        guard let lf = text.firstIndex(of: ASCII.lf) else { return nil }
        return lf > 0 && text[lf - 1] == ASCII.cr ? [ASCII.cr, ASCII.lf] : [ASCII.lf]
    }

    /// Where the last `name` tag (ASCII, any case) begins: `name` then `>`, `/` or
    /// white space.
    static func lastTag(_ name: String, in text: Bytes) -> Int? {
        let needle = Array(name.utf8)
        var i = text.count - needle.count
        while i >= 0 {
            if zip(text[i...], needle).allSatisfy({ ASCII.lower($0) == $1 }) {
                let next = i + needle.count < text.count ? text[i + needle.count] : ASCII.greaterThan
                if next == ASCII.greaterThan || next == UInt8(ascii: "/") || ASCII.isWSP(next) || next == ASCII.cr || next == ASCII.lf {
                    return i
                }
            }
            i -= 1
        }
        return nil
    }

    /// The encoders write CRLF; a part whose header ends its lines with LF alone
    /// gets LF, as the rest of its message has.
    static func withLineEnding(_ encoded: Bytes, _ eol: Bytes) -> Bytes {
        guard eol == [ASCII.lf] else { return encoded }
        return encoded.filter { $0 != ASCII.cr }      // encoded text holds CR only in CRLF
    }
}
