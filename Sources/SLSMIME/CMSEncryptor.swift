internal import COpenSSL
import SLMessage
import SLOpenSSL

/// Content encryption for S/MIME 4.0 (RFC 8551).
public enum ContentCipher: Sendable {
    /// AES-256-GCM AuthEnvelopedData (RFC 5083): authenticated, but few clients read it.
    case aes256GCM
    /// AES-256-CBC EnvelopedData: what clients read; no integrity protection of its own.
    case aes256CBC

    var smimeType: String { self == .aes256GCM ? "authEnveloped-data" : "enveloped-data" }
}

/// Encrypts a MIME entity with OpenSSL CMS, streaming from one file descriptor to
/// another: the content is read through a BIO while the CMS structure is written,
/// so a large message is never held in memory.
public enum CMSEncryptor {
    /// Writes the base64 of the DER CMS structure (the body of an
    /// application/pkcs7-mime part) to `output`, LF line ends.
    public static func encrypt(input: Int32, output: Int32, to recipients: [X509Certificate], cipher: ContentCipher) throws {
        precondition(!recipients.isEmpty, "encrypting to nobody")
        let evp = cipher == .aes256GCM ? EVP_aes_256_gcm() : EVP_aes_256_cbc()
        let flags = UInt32(CMS_BINARY | CMS_STREAM)
        try CMSStreams.withBase64Output(input: input, output: output) { inBIO, out in
            try CMSStreams.withStack(recipients) { certs in
                guard let cms = CMS_encrypt(certs, inBIO, evp, flags) else { throw OpenSSLError("CMS encryption failed") }
                defer { CMS_ContentInfo_free(cms) }
                guard i2d_CMS_bio_stream(out, cms, inBIO, Int32(flags)) == 1 else { throw OpenSSLError("writing the CMS structure failed") }
            }
        }
    }
}
