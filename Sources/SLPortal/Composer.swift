import Foundation
import SLEscrow
import SLMessage

/// New messages the portal writes on a person's behalf (secure replies, SecureSend
/// messages): text and attachments from a form, header fields only from values
/// checked here. Every field value is one line (CR, LF and other controls are
/// refused), addresses parse as the core's parser reads them, the subject is
/// RFC 2047-encoded when not ASCII, file names go in RFC 2231 parameters: nothing a
/// visitor types can add a header field or a MIME part.
enum Composer {
    struct Refused: Error, CustomStringConvertible, SysexitReporting {
        let description: String
        var sysexit: Sysexit { .dataError }
    }

    /// A field value that must stay one line, at most `limit` characters.
    static func oneLine(_ value: String, _ what: String, limit: Int = 998) throws -> String {
        guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == "\u{2028}" || $0 == "\u{2029}" }) else {
            throw Refused(description: "the \(what) must be one line")
        }
        guard value.count <= limit else { throw Refused(description: "the \(what) is longer than \(limit) characters") }
        return value
    }

    /// Text from a message's own header made one line: folds and controls become
    /// single spaces (the value was already a header field; this only re-flows it).
    static func flattened(_ value: String) -> String {
        OneLine.of(value).split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }

    /// An address the core's parser accepts, as its addr-spec.
    static func address(_ value: String, _ what: String) throws -> String {
        let trimmed = try oneLine(value.trimmingCharacters(in: .whitespaces), what, limit: 320)
        guard let parsed = try? EmailAddress(parsing: trimmed), parsed.displayName == nil else {
            throw Refused(description: "the \(what) is not an email address")
        }
        return parsed.addrSpec
    }

    /// `text` as text/plain (UTF-8, quoted-printable), with `files` as attachments.
    static func message(fields: [(String, String)], text: String, files: [UploadForm.File], hostname: String,
                        date: Date) throws -> Message {
        let textPart = try MIMEBuilder.leaf(contentType: ContentType(type: "text", subtype: "plain", parameters: ["charset": "utf-8"]),
                                            transferEncoding: .quotedPrintable, body: Array(text.utf8))
        let body: MIMEEntity
        if files.isEmpty {
            body = textPart
        } else {
            var parts = [textPart]
            for f in files {
                let type = ContentType(parsing: f.type)
                let safeType = type.type.isEmpty || type.type.lowercased() == "multipart" || type.type.lowercased() == "message"
                    ? ContentType(type: "application", subtype: "octet-stream") : ContentType(type: type.type, subtype: type.subtype)
                let name = try oneLine(f.name, "file name", limit: 255)
                parts.append(try MIMEBuilder.leaf(contentType: safeType, transferEncoding: .base64, body: f.bytes, extraFields: [
                    ("Content-Disposition", ContentDisposition(disposition: "attachment", parameters: ["filename": name]).headerValue),
                ]))
            }
            body = try MIMEBuilder.multipart(subtype: "mixed", parts: parts)
        }
        let messageID = "<portal.\(RandomOctets.token(18))@\(hostname)>"
        var head = ""
        for (name, value) in fields + [("Date", DeliveryReport.rfc5322Date(date)), ("Message-ID", messageID), ("MIME-Version", "1.0")] {
            head += "\(name): \(try oneLine(value, name))\r\n"
        }
        return try Message(bytes: Array(head.utf8) + body.canonicalCRLF().serialized())
    }
}
