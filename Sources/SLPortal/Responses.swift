import Foundation
import HTTPTypes
import Hummingbird
import SLEscrow
import SLMessage

/// How the portal answers: HTML pages, our static files, redirects after a form,
/// and downloads. The security headers are the middleware's (PortalMiddleware).
enum Reply {
    static func html(_ status: HTTPResponse.Status, _ text: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func file(_ text: String, type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// 303 after a form: the next GET shows the result, and a reload does not post again.
    static func seeOther(_ location: String, cookies: [String] = []) -> Response {
        var headers = HTTPFields()
        headers[.location] = location
        for c in cookies { headers.append(HTTPField(name: .setCookie, value: c)) }
        return Response(status: .seeOther, headers: headers)
    }

    /// Bytes as a download: never rendered by the browser (attachment, octet-stream
    /// unless the type is one we name), the file name in RFC 6266 form: an ASCII
    /// fallback and the UTF-8 original.
    static func download(_ bytes: Bytes, name: String, type: String = "application/octet-stream") -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.contentDisposition] = contentDisposition(name)
        headers[.contentLength] = String(bytes.count)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func contentDisposition(_ name: String) -> String {
        let cleaned = String(name.unicodeScalars.map { $0.properties.generalCategory == .control ? "_" : Character($0) })
        let fallback = String(cleaned.unicodeScalars.map { scalar -> Character in
            scalar.isASCII && scalar != "\"" && scalar != "\\" && scalar != "/" && scalar != ";" ? Character(scalar) : "_"
        })
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)...Unicode.Scalar(127)))
        allowed.insert(charactersIn: "!#$&+-.^_`|~")
        let encoded = cleaned.addingPercentEncoding(withAllowedCharacters: allowed) ?? fallback
        return "attachment; filename=\"\(fallback.isEmpty ? "attachment" : fallback)\"; filename*=UTF-8''\(encoded)"
    }

    static func notFound(base: String) -> Response {
        html(.notFound, Pages.notice(base: base, title: "No such message",
            "This link does not lead to a message: check that you copied the whole link from your notice."))
    }

    static func tooLarge(base: String) -> Response {
        html(.contentTooLarge, Pages.notice(base: base, title: "Too large", "That form was larger than this portal accepts."))
    }

    static func staleForm(base: String) -> Response {
        html(.forbidden, Pages.notice(base: base, title: "Please start again",
            "This form has expired or did not come from this site: open the link from your notice again."))
    }

    static func busy(base: String) -> Response {
        var response = html(.serviceUnavailable, Pages.notice(base: base, title: "Busy",
            "The portal is busy opening other messages; please try again in a few seconds."))
        response.headers[.retryAfter] = "5"
        return response
    }

    static func tooMany(base: String, retryAfter: Int) -> Response {
        var response = html(.tooManyRequests, Pages.notice(base: base, title: "Too many attempts",
            "Too many attempts from your network in a short time; please wait a minute and try again."))
        response.headers[.retryAfter] = String(retryAfter)
        return response
    }

    /// A form that could not be taken: too large (413), or stale or forged (403).
    static func refused(_ problem: Form.Problem, base: String) -> Response {
        switch problem {
        case .tooLarge: return tooLarge(base: base)
        case .stale: return staleForm(base: base)
        case .malformed:
            return html(.badRequest, Pages.notice(base: base, title: "Not sent",
                "That form was not well formed: a field or file name must be one line."))
        }
    }

    /// What went wrong asking the store, as a page: every slot busy (503), a
    /// refusal the store states (Pickup.refusal), else logged and 500.
    static func trouble(_ error: any Error, base: String, during what: String) -> Response {
        switch error {
        case is StorePool.Busy: return busy(base: base)
        case let refusal as EscrowError: return Pickup.refusal(refusal, base: base)
        default:
            PortalLog.line("\(what): \(error)")
            return failure(base: base)
        }
    }

    static func failure(base: String) -> Response {
        html(.internalServerError, Pages.notice(base: base, title: "Something went wrong",
            "The message cannot be shown right now; please try again later."))
    }
}
