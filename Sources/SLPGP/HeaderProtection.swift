import SLMessage

/// RFC 9788 header protection for an encrypted message: the header fields that say
/// who and what travel inside the encryption; outside, the Subject is obscured.
public enum HeaderProtection {
    /// Fields copied into the cryptographic payload (RFC 9788 section 2.1's list of
    /// commonly protected fields that a reader displays or threads by).
    public static let protectedFields = ["From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID",
                                         "In-Reply-To", "References", "Followup-To", "Keywords", "Comments"]

    /// Fields obscured on the outside, with the value that replaces them.
    public static func obscured(subject: String) -> [String: String] { ["Subject": subject] }

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
                let st = t.parameter("smime-type")?.lowercased()
                if st == nil || st == "enveloped-data" || st == "authenveloped-data" { return .smime }
            default: break
            }
        }
        // Inline PGP: an armored message block at the start of a line, anywhere in the
        // body (scanned chunk by chunk, with an overlap so a marker split between
        // chunks is still found).
        let marker = Array("-----BEGIN PGP MESSAGE-----".utf8)
        var tail = Bytes()
        var found = false
        try message.body.forEachChunk { chunk in
            guard !found else { return }
            let window = tail + chunk
            if Self.containsAtLineStart(window, marker) { found = true }
            tail = Array(window.suffix(marker.count))
        }
        return found ? .inlinePGP : nil
    }

    static func containsAtLineStart(_ hay: Bytes, _ needle: Bytes) -> Bool {
        guard hay.count >= needle.count else { return false }
        var i = 0
        while i + needle.count <= hay.count {
            if (i == 0 || hay[i - 1] == 0x0A) && hay[i] == needle[0] && hay[i..<i + needle.count].elementsEqual(needle) { return true }
            guard let next = hay[i...].firstIndex(of: 0x0A) else { return false }
            i = next + 1
        }
        return false
    }
}
