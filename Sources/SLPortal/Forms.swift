import Foundation
import Hummingbird
import SLEscrow
import SLMessage

/// A posted form, read within the size limit and checked against CSRF: every form
/// carries a token that must equal the `sl_csrf` cookie (double submit; the cookie
/// is SameSite=Strict, so another site can neither read nor send it).
struct Form {
    let fields: [String: String]
    let csrf: String

    subscript(_ name: String) -> String? { fields[name] }

    /// Never leaves the portal (it becomes a 413 or 403 page).
    enum Problem: Error, SysexitReporting {
        case tooLarge, stale
        /// A multipart form whose part headers hold a bare CR.
        case malformed
        var sysexit: Sysexit { .dataError }
    }

    static func read(_ request: Request) async throws(Problem) -> Form {
        let text: String
        do {
            text = String(buffer: try await request.body.collect(upTo: Portal.bodyLimit))
        } catch {
            throw .tooLarge
        }
        let fields = parse(text)
        guard let cookie = CSRF.token(from: request), let field = fields["csrf"],
              CSRF.constantTimeEquals(cookie, field) else { throw .stale }
        return Form(fields: fields, csrf: cookie)
    }

    /// application/x-www-form-urlencoded; the first value of a repeated name wins.
    static func parse(_ text: String) -> [String: String] {
        var form: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String? { String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding }
            guard let key = decode(kv[0]) else { continue }
            let value = kv.count > 1 ? decode(kv[1]) : ""
            if form[key] == nil, let value { form[key] = value }
        }
        return form
    }
}

enum CSRF {
    static let cookie = "sl_csrf"

    static func token(from request: Request) -> String? {
        guard let value = request.cookies[cookie]?.value, Tokens.isToken(value) else { return nil }
        return value
    }

    /// The request's token, or a new one to set with `cookieHeader`.
    static func tokenOrNew(_ request: Request) -> (token: String, isNew: Bool) {
        if let t = token(from: request) { return (t, false) }
        return (Tokens.new(), true)
    }

    /// Secure: browsers reach the portal over HTTPS, its own or its proxy's (plain
    /// HTTP is served only behind a proxy).
    static func cookieHeader(_ token: String, base: String) -> String {
        "\(cookie)=\(token); Path=\(base.isEmpty ? "/" : base); HttpOnly; SameSite=Strict; Secure"
    }

    static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in x.indices { difference |= x[i] ^ y[i] }
        return difference == 0
    }
}

enum Tokens {
    /// `count` random octets (libsodium), base64url without padding (43
    /// characters for 32). Cheap: the link page makes one per new visitor.
    static func new(bytes count: Int = 32) -> String { RandomOctets.token(count) }

    static func isToken(_ value: String, length: Int = 43) -> Bool {
        value.count == length && value.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }
}

/// A posted multipart/form-data form (the reply and SecureSend forms, which carry
/// files), read within `limit` octets and parsed by the message core's own MIME
/// parser: the body is a MIME multipart, its parts named by Content-Disposition.
/// Checked against CSRF like `Form`.
struct UploadForm {
    struct File {
        var name: String
        var type: String
        var bytes: Bytes
    }
    let fields: [String: String]
    let files: [File]
    let csrf: String

    subscript(_ name: String) -> String? { fields[name] }

    static func read(_ request: Request, limit: Int) async throws(Form.Problem) -> UploadForm {
        guard let type = request.headers[.contentType], type.lowercased().hasPrefix("multipart/form-data"),
              !type.contains(where: { $0 == "\r" || $0 == "\n" }) else { throw .stale }
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: limit) } catch { throw .tooLarge }
        guard let entity = try? MIMEEntity.parse(Array("Content-Type: \(type)\r\n\r\n".utf8) + Array(buffer: body)),
              entity.isMultipart else { throw .stale }
        var fields: [String: String] = [:]
        var files: [File] = []
        for part in entity.parts {
            // A CR or LF that does not end a header line is an attempt to smuggle
            // a field into what we write from these values: refused outright.
            let head = part.header.bytes
            for i in head.indices where head[i] == 0x0D && (i + 1 == head.count || head[i + 1] != 0x0A) { throw .malformed }
            guard let disposition = part.contentDisposition, disposition.disposition == "form-data",
                  let name = disposition.parameter("name") else { continue }
            let bytes = (try? part.decodedBody()) ?? part.body
            if let filename = disposition.filename {
                guard !filename.isEmpty, !bytes.isEmpty else { continue }      // an empty file input
                files.append(File(name: (filename as NSString).lastPathComponent, type: part.contentType.mimeType, bytes: bytes))
            } else if fields[name] == nil {
                fields[name] = String(decoding: bytes, as: UTF8.self)
            }
        }
        guard let cookie = CSRF.token(from: request), let field = fields["csrf"],
              CSRF.constantTimeEquals(cookie, field) else { throw .stale }
        return UploadForm(fields: fields, files: files, csrf: cookie)
    }
}
