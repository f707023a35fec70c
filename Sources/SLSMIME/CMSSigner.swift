internal import COpenSSL
import SLMessage
import SLOpenSSL

/// A private key for signing. Owns its `EVP_PKEY*`.
public final class PrivateKey: @unchecked Sendable {
    let handle: OpaquePointer

    /// Reads an unencrypted PEM private key (PKCS#8 or traditional).
    public init(pem: Bytes) throws {
        let key: OpaquePointer? = pem.withUnsafeBytes { buffer in
            guard let bio = MemoryBIO(reading: buffer) else { return nil }
            return PEM_read_bio_PrivateKey(bio.handle, nil, nil, nil)
        }
        guard let key else { throw OpenSSLError("not an unencrypted PEM private key") }
        handle = key
    }

    deinit { EVP_PKEY_free(handle) }

    /// True when this key belongs to `certificate`.
    public func matches(_ certificate: X509Certificate) -> Bool {
        X509_check_private_key(certificate.handle, handle) == 1
    }
}

/// Opaque S/MIME signing (SignedData with the content inside), streamed from one
/// file descriptor to another as base64: the inner layer of "signed, then enveloped".
public enum CMSSigner {
    /// Writes an application/pkcs7-mime; smime-type=signed-data entity (header and
    /// base64 body, CRLF) whose SignedData carries the bytes readable from `input`.
    public static func writeSignedEntity(input: Int32, output: Int32, signer: X509Certificate, key: PrivateKey,
                                         chain: [X509Certificate] = []) throws {
        let header = "Content-Type: application/pkcs7-mime; smime-type=signed-data; name=\"smime.p7m\"\r\n"
            + "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n"
        try FileDescriptorIO.writeAll(output, Array(header.utf8))
        let flags = UInt32(CMS_BINARY | CMS_STREAM)
        try CMSStreams.withBase64Output(input: input, output: output) { inBIO, out in
            try CMSStreams.withStack(chain) { extra in
                guard let cms = CMS_sign(signer.handle, key.handle, extra, inBIO, flags) else { throw OpenSSLError("CMS signing failed") }
                defer { CMS_ContentInfo_free(cms) }
                guard i2d_CMS_bio_stream(out, cms, inBIO, Int32(flags)) == 1 else { throw OpenSSLError("writing the signed data failed") }
            }
        }
    }
}
