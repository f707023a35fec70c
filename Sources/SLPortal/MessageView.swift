import Foundation
import SLMessage

/// What the portal shows of an opened message in this version: the decoded address
/// and subject fields, the text/plain parts as text, and the names and sizes of
/// everything else. HTML parts are never rendered here (no sanitizer yet) and
/// attachments are not offered for download.
public struct MessageView: Sendable, Equatable {
    public struct Attachment: Sendable, Equatable {
        public var name: String
        public var type: String
        public var size: Int
    }
    /// (field name, decoded value), in this order, for the fields present.
    public var fields: [(String, String)] { fieldList.map { ($0.name, $0.value) } }
    var fieldList: [Field] = []
    public var texts: [String] = []
    public var attachments: [Attachment] = []
    /// How many text/html parts were left out.
    public var htmlParts = 0

    struct Field: Sendable, Equatable { var name: String; var value: String }

    public static let shownFields = ["From", "To", "Cc", "Date", "Subject"]

    public init(message bytes: Bytes) throws {
        let entity = try MIMEEntity.parse(bytes)
        for name in Self.shownFields {
            let values = entity.header.all(name).map(\.decodedValue)
            if !values.isEmpty { fieldList.append(Field(name: name, value: values.joined(separator: ", "))) }
        }
        walk(entity, depth: 0)
    }

    private mutating func walk(_ entity: MIMEEntity, depth: Int) {
        if entity.isMultipart {
            for part in entity.parts { walk(part, depth: depth + 1) }
            return
        }
        let disposition = entity.contentDisposition
        let isAttachment = disposition.map { !$0.isInline } ?? false
        let type = entity.contentType.mimeType
        if !isAttachment && type == "text/plain" {
            let body = (try? entity.decodedBody()) ?? entity.body
            texts.append(Charsets.decode(body, charset: entity.contentType.charset ?? "us-ascii")
                         ?? String(decoding: body, as: UTF8.self))
            return
        }
        if !isAttachment && type == "text/html" { htmlParts += 1; return }
        let size = ((try? entity.decodedBody()) ?? entity.body).count
        let name = disposition?.filename ?? entity.contentType.parameter("name")
            ?? (entity.isEncapsulatedMessage || type == "message/rfc822" ? "attached message" : "unnamed")
        attachments.append(Attachment(name: EncodedWords.decode(name), type: type, size: size))
    }

    public static func == (a: MessageView, b: MessageView) -> Bool {
        a.fieldList == b.fieldList && a.texts == b.texts && a.attachments == b.attachments && a.htmlParts == b.htmlParts
    }
}
