import COpenSSL
import SLMessage

/// Content encryption for S/MIME 4.0 (RFC 8551).
public enum ContentCipher: Sendable {
    /// AES-256-GCM AuthEnvelopedData (RFC 5083): the default.
    case aes256GCM
    /// AES-256-CBC EnvelopedData, only for recipients that cannot read GCM.
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
        ERR_clear_error()
        guard let inBIO = BIO_new_fd(input, BIO_NOCLOSE) else { throw SMIMEError("cannot read the content") }
        defer { BIO_free(inBIO) }
        guard let fileBIO = BIO_new_fd(output, BIO_NOCLOSE) else { throw SMIMEError("cannot write the output") }
        guard let b64 = BIO_new(BIO_f_base64()) else { BIO_free(fileBIO); throw SMIMEError("no base64 filter") }
        let out = BIO_push(b64, fileBIO)
        defer { BIO_free_all(out) }
        let certs = OPENSSL_sk_new_null()
        defer { OPENSSL_sk_free(certs) }
        for c in recipients { _ = OPENSSL_sk_push(certs, UnsafeRawPointer(c.handle)) }
        let evp = cipher == .aes256GCM ? EVP_aes_256_gcm() : EVP_aes_256_cbc()
        let flags = UInt32(CMS_BINARY | CMS_STREAM)
        guard let cms = CMS_encrypt(certs, inBIO, evp, flags) else { throw SMIMEError("CMS encryption failed") }
        defer { CMS_ContentInfo_free(cms) }
        guard i2d_CMS_bio_stream(out, cms, inBIO, Int32(flags)) == 1 else { throw SMIMEError("writing the CMS structure failed") }
        guard BIO_ctrl(out, BIO_CTRL_FLUSH, 0, nil) == 1 else { throw SMIMEError("flushing the output failed") }
    }
}
