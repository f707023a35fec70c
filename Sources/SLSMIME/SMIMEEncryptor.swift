#if canImport(Glibc)
import Glibc
#endif
import SLMessage
import SLOpenSSL

/// A recipient whose certificate cannot be used. Exit 69, like a missing PGP key.
public struct RecipientCertificateError: Error, CustomStringConvertible, Equatable {
    public let recipient: String
    public let problem: String
    public var description: String { "\(recipient): \(problem)" }
    public init(recipient: String, problem: String) {
        self.recipient = recipient
        self.problem = problem
    }
}

/// Builds S/MIME 4.0 messages (RFC 8551) with RFC 9788 header protection:
///
///     <outer header: routing, From/To/Date..., Subject: [...], MIME-Version>
///     Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"
///     Content-Transfer-Encoding: base64
///     <base64 CMS EnvelopedData (or AuthEnvelopedData) of the protected payload>
///
/// The payload and the CMS output are staged in unlinked temporary files.
public enum SMIMEEncryptor {
    /// A signer for "signed, then enveloped": the sender's certificate and key.
    public struct Signer: Sendable {
        public var certificate: X509Certificate
        public var key: PrivateKey
        public init(certificate: X509Certificate, key: PrivateKey) { self.certificate = certificate; self.key = key }
    }

    public static func encrypt(_ message: Message, to recipients: [X509Certificate], cipher: ContentCipher,
                               outerSubject: String, signer: Signer? = nil) throws -> Message {
        let payload = try TemporaryFile.openUnlinked()
        defer { close(payload) }
        let sink = FileDescriptorSink(fd: payload)
        try HeaderProtection.writePayload(of: message, outerSubject: outerSubject, to: sink)
        try sink.flush()
        guard lseek(payload, 0, SEEK_SET) == 0 else { throw MessageError.io("cannot rewind the staged payload") }
        var content = payload
        let signed = signer == nil ? -1 : try TemporaryFile.openUnlinked()
        defer { if signed >= 0 { close(signed) } }
        if let signer {
            try CMSSigner.writeSignedEntity(input: payload, output: signed, signer: signer.certificate, key: signer.key)
            guard lseek(signed, 0, SEEK_SET) == 0 else { throw MessageError.io("cannot rewind the signed entity") }
            content = signed
        }
        let cms = try TemporaryFile.openUnlinked()
        defer { close(cms) }
        try CMSEncryptor.encrypt(input: content, output: cms, to: recipients, cipher: cipher)
        guard lseek(cms, 0, SEEK_SET) == 0 else { throw MessageError.io("cannot rewind the CMS output") }

        let header = try HeaderProtection.outerHeader(of: message, outerSubject: outerSubject, contentFields: [
            ("Content-Type", "application/pkcs7-mime; smime-type=\(cipher.smimeType); name=\"smime.p7m\""),
            ("Content-Transfer-Encoding", "base64"),
            ("Content-Disposition", "attachment; filename=\"smime.p7m\""),
        ])
        let body = Spool()
        let useCRLF = header.lineEnding.count == 2
        var state = CRLF()
        var buffer = Bytes(repeating: 0, count: 64 << 10)
        while true {
            let n = try FileDescriptorIO.read(cms, into: &buffer, count: buffer.count)
            if n == 0 { break }
            try body.append(useCRLF ? state.convert(buffer[0..<n]) : Array(buffer[0..<n]))
        }
        return Message(fromLine: message.fromLine, header: header, body: body, index: message.index)
    }
}

extension RecipientCertificateError: RecipientRefusal {
    public var refusedRecipient: String { recipient }
    public var refusalReason: String { "no usable S/MIME certificate: \(problem)" }
    public var refusalStatus: EnhancedStatus { .cryptographicFailure }
}
