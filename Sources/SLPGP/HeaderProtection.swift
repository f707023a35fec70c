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
