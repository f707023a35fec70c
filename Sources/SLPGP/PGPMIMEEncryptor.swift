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
        try writePayload(of: message, outerSubject: options.outerSubject, to: payloadSink)
        try payloadSink.flush()
        guard lseek(payload, 0, SEEK_SET) == 0 else { throw MessageError.io("cannot rewind the staged payload") }

        let cipher = try TemporaryFile.openUnlinked()
        defer { close(cipher) }
        try keyring.encrypt(input: payload, output: cipher, to: recipients,
                            signers: options.signer.map { [$0] } ?? [], hideRecipients: options.hideRecipients)
        guard lseek(cipher, 0, SEEK_SET) == 0 else { throw MessageError.io("cannot rewind the ciphertext") }
        return try outerMessage(for: message, ciphertext: cipher, outerSubject: options.outerSubject)
    }

    /// The cryptographic payload: content fields (hp="cipher" added), the protected
    /// fields, HP-Outer fields saying what the outside shows, then the body in CRLF.
    func writePayload(of message: Message, outerSubject: String, to sink: ByteSink) throws {
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

    func outerMessage(for message: Message, ciphertext: Int32, outerSubject: String) throws -> Message {
        var header = message.header
        header.remove(where: HeaderProtection.isContentField)
        if header.first("Subject") != nil { try header.set("Subject", outerSubject) }
        let boundary = MIMEBuilder.makeBoundary()
        try header.add("MIME-Version", "1.0")
        try header.add("Content-Type", "multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"\(boundary)\"")
        if header.separator.isEmpty { header.separator = header.lineEnding }
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

/// LF to CRLF conversion across chunk boundaries; existing CRLF is kept.
struct CRLF {
    private var previous: UInt8 = 0
    var endsWithLineBreak: Bool { previous == 0x0A }

    mutating func convert(_ chunk: ArraySlice<UInt8>) -> Bytes {
        var out = Bytes()
        out.reserveCapacity(chunk.count + chunk.count / 32)
        for b in chunk {
            if b == 0x0A && previous != 0x0D { out.append(0x0D) }
            out.append(b)
            previous = b
        }
        return out
    }

    static func canonical(_ raw: Bytes) -> Bytes {
        var s = CRLF()
        return s.convert(raw[...])
    }
}
