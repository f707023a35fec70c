#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage

/// Options for one encryption.
public struct PGPMIMEOptions: Sendable {
    /// Replacement for the Subject outside the encryption (RFC 9788 default "[...]").
    public var outerSubject = "[...]"
    /// Sign with the sender's key (sign, then encrypt, in one OpenPGP message).
    public var signer: PGPKey?
    /// Leave recipient key IDs out of the message (hidden recipients).
    public var hideRecipients = false
    public init() {}
}

/// Builds RFC 3156 PGP/MIME messages with RFC 9788 header protection:
///
///     <outer header: routing, From/To/Date..., Subject: [...], MIME-Version>
///     Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"
///       application/pgp-encrypted      "Version: 1"
///       application/octet-stream       ASCII-armored OpenPGP message of:
///         <payload: Content-* fields with hp="cipher", protected fields, HP-Outer>
///         <original body, line endings made CRLF>
///
/// The payload and the ciphertext are staged in unlinked temporary files, so a large
/// message streams through GnuPG without being held in memory.
public struct PGPMIMEEncryptor {
    let keyring: PGPKeyring

    public init(keyring: PGPKeyring) { self.keyring = keyring }

    public func encrypt(_ message: Message, to recipients: [SelectedKey], options: PGPMIMEOptions) throws -> Message {
        let payload = try TemporaryFile.openUnlinked()
        defer { close(payload) }
        let payloadSink = FileDescriptorSink(fd: payload)
        try HeaderProtection.writePayload(of: message, outerSubject: options.outerSubject, to: payloadSink)
        try payloadSink.flush()
        guard lseek(payload, 0, SEEK_SET) == 0 else { throw MessageError.io("cannot rewind the staged payload") }

        let cipher = try TemporaryFile.openUnlinked()
        defer { close(cipher) }
        try keyring.encrypt(input: payload, output: cipher, to: recipients,
                            signers: options.signer.map { [$0] } ?? [], hideRecipients: options.hideRecipients)
        guard lseek(cipher, 0, SEEK_SET) == 0 else { throw MessageError.io("cannot rewind the ciphertext") }
        return try outerMessage(for: message, ciphertext: cipher, outerSubject: options.outerSubject)
    }

    func outerMessage(for message: Message, ciphertext: Int32, outerSubject: String) throws -> Message {
        let boundary = MIMEBuilder.makeBoundary()
        let header = try HeaderProtection.outerHeader(of: message, outerSubject: outerSubject, contentFields: [
            ("Content-Type", "multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"\(boundary)\""),
        ])
        let nl = String(decoding: header.lineEnding, as: UTF8.self)
        let body = Spool()
        func put(_ s: String) throws { try body.append(Array(s.utf8)) }
        try put("This is an OpenPGP/MIME encrypted message (RFC 3156 and RFC 9788).\(nl)")
        try put("--\(boundary)\(nl)Content-Type: application/pgp-encrypted\(nl)Content-Description: PGP/MIME version identification\(nl)\(nl)Version: 1\(nl)\(nl)")
        try put("--\(boundary)\(nl)Content-Type: application/octet-stream; name=\"encrypted.asc\"\(nl)")
        try put("Content-Description: OpenPGP encrypted message\(nl)Content-Disposition: inline; filename=\"encrypted.asc\"\(nl)\(nl)")
        // gpg writes LF; the message keeps one line-ending convention throughout.
        var buffer = Bytes(repeating: 0, count: 64 << 10)
        let useCRLF = header.lineEnding.count == 2
        var state = CRLF()
        var lastByte: UInt8 = 0x0A
        while true {
            let n = try FileDescriptorIO.read(ciphertext, into: &buffer, count: buffer.count)
            if n == 0 { break }
            lastByte = buffer[n - 1]
            try body.append(useCRLF ? state.convert(buffer[0..<n]) : Array(buffer[0..<n]))
        }
        if lastByte != 0x0A { try put(nl) }
        try put("\(nl)--\(boundary)--\(nl)")
        return Message(fromLine: message.fromLine, header: header, body: body, index: message.index)
    }
}

