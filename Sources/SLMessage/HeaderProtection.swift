#if canImport(Glibc)
import Glibc
#endif
/// RFC 9788 header protection for an encrypted message: the header fields that say
/// who and what travel inside the encryption; outside, the Subject is obscured.
public enum HeaderProtection {
    /// Fields copied into the cryptographic payload (RFC 9788 section 2.1's list of
    /// commonly protected fields that a reader displays or threads by).
    public static let protectedFields = ["From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID",
                                         "In-Reply-To", "References", "Followup-To", "Keywords", "Comments"]

    /// Fields obscured on the outside, with the value that replaces them.
    public static func obscured(subject: String) -> [String: String] { ["Subject": subject] }

    /// The outer header of a protected message: the original fields except the
    /// content fields (they move into the payload), the Subject obscured, then
    /// MIME-Version and the new content fields.
    public static func outerHeader(of message: Message, outerSubject: String, contentFields: [(String, String)]) throws -> HeaderSection {
        var header = message.header
        header.remove(where: isContentField)
        if header.first("Subject") != nil { try header.set("Subject", outerSubject) }
        try header.add("MIME-Version", "1.0")
        for (name, value) in contentFields { try header.add(name, value) }
        if header.separator.isEmpty { header.separator = header.lineEnding }
        return header
    }

    /// The cryptographic payload: content fields (hp="cipher" added), the protected
    /// fields, HP-Outer fields saying what the outside shows, then the body in CRLF.
    public static func writePayload(of message: Message, outerSubject: String, to sink: ByteSink) throws {
        let crlf: Bytes = [0x0D, 0x0A]
        var contentType = ContentType(parsing: message.header["Content-Type"] ?? "text/plain; charset=us-ascii")
        contentType.parameters["hp"] = "cipher"
        try sink.write(Array("Content-Type: \(contentType.headerValue)".utf8) + crlf)
        for f in message.header.fields where HeaderProtection.isContentField(f) && !f.hasName("Content-Type") && !f.hasName("MIME-Version") {
            try sink.write(CRLF.canonical(f.raw))
        }
        let obscured = HeaderProtection.obscured(subject: outerSubject)
        for name in HeaderProtection.protectedFields {
            for f in message.header.all(name) {
                try sink.write(CRLF.canonical(f.raw))
                let outer = obscured[f.name] ?? obscured.first { f.hasName($0.key) }?.value
                try sink.write(Array("HP-Outer: \(f.name): ".utf8) + Array((outer ?? f.unfoldedValue).utf8) + crlf)
            }
        }
        try sink.write(crlf)
        var state = CRLF()
        try message.body.forEachChunk { try sink.write(state.convert($0)[...]) }
        if !state.endsWithLineBreak { try sink.write(crlf) }
    }


    /// Content header fields: they describe the body and move into the payload.
    public static func isContentField(_ f: HeaderField) -> Bool {
        let n = f.name.lowercased()
        return n.hasPrefix("content-") || n == "mime-version"
    }
}

/// Is this message already protected? Then the encryption tools pass it through:
/// wrapping an encrypted message again helps nobody and breaks readers.
public enum EncryptionDetector {
    public enum Kind: String, Sendable { case pgpMIME = "PGP/MIME", inlinePGP = "inline PGP", smime = "S/MIME" }

    public static func existingEncryption(of message: Message) throws -> Kind? {
        if let ct = message.header["Content-Type"] {
            let t = ContentType(parsing: ct)
            switch t.mimeType {
            case "multipart/encrypted": return .pgpMIME
            case "application/pgp-encrypted": return .pgpMIME
            case "application/pkcs7-mime", "application/x-pkcs7-mime":
                // only what says it is encrypted; a signed-only or unlabelled blob is wrapped
                let st = t.parameter("smime-type")?.lowercased()
                if st == "enveloped-data" || st == "authenveloped-data" { return .smime }
            default: break
            }
        }
        // Inline PGP: the body itself is an armored message (its first non-blank
        // line is the armor header). A mere line somewhere in the body (a quoted
        // reply, a pasted key) does not count: passing such a message on unencrypted
        // would send plaintext where encryption was asked for.
        let marker = Array("-----BEGIN PGP MESSAGE-----".utf8)
        let head = try message.body.prefix(4096)
        let firstLine = head.split(separator: 0x0A, omittingEmptySubsequences: true)
            .first { !$0.allSatisfy { $0 == 0x0D || $0 == 0x20 || $0 == 0x09 } }
        if let line = firstLine, Array(line.prefix(marker.count)) == marker { return .inlinePGP }
        return nil
    }
}

/// LF to CRLF conversion across chunk boundaries; existing CRLF is kept.
public struct CRLF {
    private var previous: UInt8 = 0
    public var endsWithLineBreak: Bool { previous == 0x0A }

    public init() {}

    /// The chunk with every bare LF made CRLF. Copies the runs between line feeds
    /// whole (memchr finds them): a byte-at-a-time loop cost as much as compressing
    /// the message (bench/pgp, 10 MB).
    public mutating func convert(_ chunk: ArraySlice<UInt8>) -> Bytes {
        var out = Bytes()
        guard !chunk.isEmpty else { return out }
        out.reserveCapacity(chunk.count + chunk.count / 32 + 2)
        chunk.withUnsafeBufferPointer { buf in
            let base = buf.baseAddress!
            var start = 0
            while start < buf.count {
                guard let hit = memchr(base + start, 0x0A, buf.count - start) else {
                    out.append(contentsOf: UnsafeBufferPointer(start: base + start, count: buf.count - start))
                    break
                }
                let lf = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                out.append(contentsOf: UnsafeBufferPointer(start: base + start, count: lf - start))
                let before = lf > 0 ? base[lf - 1] : previous
                if before != 0x0D { out.append(0x0D) }
                out.append(0x0A)
                start = lf + 1
            }
            previous = base[buf.count - 1]
        }
        return out
    }

    public static func canonical(_ raw: Bytes) -> Bytes {
        var s = CRLF()
        return s.convert(raw[...])
    }
}
