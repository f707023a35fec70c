import Foundation
import SLMessage

/// An opened message as the portal shows it: the decoded address and subject
/// fields, and its leaf parts in order (numbered from 0, the numbers the part URLs
/// use): text/plain shown as text, text/html shown sanitized in a sandboxed frame,
/// everything else listed as an attachment to download byte for byte.
public struct MessageView: Sendable {
    public enum Kind: Sendable, Equatable { case text, html, attachment }

    public struct Part: Sendable, Equatable {
        public var number: Int
        public var kind: Kind
        /// RFC 2231/2047-decoded file name, or a description.
        public var name: String
        public var type: String
        public var size: Int
        /// Content-ID without its angle brackets: what `cid:` URLs name.
        public var contentID: String?
        /// The decoded body: the bytes a download gives.
        public var body: Bytes
        /// text/plain: the body as text in its charset.
        public var text: String?
    }

    /// (field name, decoded value), in this order, for the fields present.
    public var fields: [(String, String)] = []
    public var parts: [Part] = []

    public var texts: [String] { parts.compactMap { $0.kind == .text ? $0.text : nil } }
    public var htmlParts: [Part] { parts.filter { $0.kind == .html } }
    public var attachments: [Part] { parts.filter { $0.kind == .attachment } }

    public static let shownFields = ["From", "To", "Cc", "Date", "Subject"]

    public init(message bytes: Bytes) throws {
        let entity = try MIMEEntity.parse(bytes)
        for name in Self.shownFields {
            let values = entity.header.all(name).map(\.decodedValue)
            if !values.isEmpty { fields.append((name, values.joined(separator: ", "))) }
        }
        walk(entity)
    }

    /// The part a `cid:` reference names, if it is one of this message's.
    public func part(contentID: String) -> Part? {
        parts.first { $0.contentID != nil && $0.contentID!.caseInsensitiveCompare(contentID) == .orderedSame }
    }

    private mutating func walk(_ entity: MIMEEntity) {
        if entity.isMultipart {
            for part in entity.parts { walk(part) }
            return
        }
        let disposition = entity.contentDisposition
        let isAttachment = disposition.map { !$0.isInline } ?? false
        let type = entity.contentType.mimeType
        let body = (try? entity.decodedBody()) ?? entity.body
        var contentID = entity.header["Content-ID"]?.trimmingCharacters(in: .whitespaces)
        if let c = contentID, c.hasPrefix("<"), c.hasSuffix(">") { contentID = String(c.dropFirst().dropLast()) }
        let kind: Kind = isAttachment ? .attachment : type == "text/plain" ? .text : type == "text/html" ? .html : .attachment
        let name = disposition?.filename ?? entity.contentType.parameter("name")
            ?? (entity.isEncapsulatedMessage || type == "message/rfc822" ? "attached message.eml" : "unnamed")
        var part = Part(number: parts.count, kind: kind, name: EncodedWords.decode(name), type: type, size: body.count,
                        contentID: contentID, body: body, text: nil)
        if kind == .text || kind == .html {
            part.text = Charsets.decode(body, charset: entity.contentType.charset ?? "us-ascii")
                ?? String(decoding: body, as: UTF8.self)
        }
        parts.append(part)
    }
}
