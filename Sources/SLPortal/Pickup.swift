import Foundation
import Hummingbird
import SLEscrow
import SLMessage

/// The pickup pages: the link page (GET), then the question and the message (POST).
/// The link secret comes in a form body, never in a URL; the answer likewise. Every
/// form carries a CSRF token that must match the `sl_csrf` cookie.
struct Pickup: Sendable {
    let base: String
    let pool: DerivationPool

    static let csrfCookie = "sl_csrf"

    // MARK: GET {base}/{id}/{n}

    /// The cookie is Secure: browsers reach the portal over HTTPS, its own or its
    /// proxy's (plain HTTP is served only behind a proxy).
    func page(_ request: Request, _ context: some RequestContext) -> Response {
        guard let (id, n) = Self.target(context) else { return Self.notFound(base: base) }
        let token = Self.csrfToken(from: request) ?? Self.newToken()
        var response = Self.html(.ok, Pages.pickup(base: base, action: "\(base)/\(id)/\(n)", csrf: token))
        response.headers[.setCookie] = "\(Self.csrfCookie)=\(token); Path=\(base.isEmpty ? "/" : base); HttpOnly; SameSite=Strict; Secure"
        return response
    }

    // MARK: POST {base}/{id}/{n}

    enum Outcome: Sendable {
        case ask(PickupPreview, note: String?)
        case opened(Bytes)
    }

    func answer(_ request: Request, _ context: some RequestContext) async -> Response {
        let bodyText: String
        do {
            let buffer = try await request.body.collect(upTo: Portal.bodyLimit)
            bodyText = String(buffer: buffer)
        } catch {
            return Self.html(.contentTooLarge, Pages.notice(base: base, title: "Too large", "That form was larger than this portal accepts."))
        }
        let form = Self.parseForm(bodyText)
        guard let cookie = Self.csrfToken(from: request), let field = form["csrf"],
              Self.constantTimeEquals(cookie, field) else {
            return Self.html(.forbidden, Pages.notice(base: base, title: "Please start again",
                "This form has expired or did not come from this site: open the link from your notice again."))
        }
        guard let (id, n) = Self.target(context) else { return Self.notFound(base: base) }
        var secret = form["secret"] ?? ""
        if secret.isEmpty, let pasted = form["link"] {
            guard let link = EscrowLink(parsing: pasted), link.id == id, link.index == n else { return Self.notFound(base: base) }
            secret = link.secret
        }
        guard !secret.isEmpty, secret.count <= 128 else { return Self.notFound(base: base) }
        let linkSecret = secret
        let answer = form["answer"].map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }

        let outcome: Outcome
        do {
            outcome = try await pool.run { store in
                let now = Date()
                guard let answer, !answer.isEmpty else {
                    let preview = try store.preview(id: id, index: n, linkSecret: linkSecret, now: now)
                    return .ask(preview, note: answer == nil ? nil : "Type your answer to open the message.")
                }
                do {
                    var message = Bytes()
                    try store.open(id: id, index: n, linkSecret: linkSecret, answer: answer, now: now) { message.append(contentsOf: $0) }
                    return .opened(message)
                } catch EscrowError.wrongAnswer(let remaining) {
                    let preview = try store.preview(id: id, index: n, linkSecret: linkSecret, now: now)
                    return .ask(preview, note: "That answer is not right. \(remaining) attempt\(remaining == 1 ? "" : "s") left.")
                }
            }
        } catch is DerivationPool.Busy {
            var response = Self.html(.serviceUnavailable, Pages.notice(base: base, title: "Busy",
                "The portal is busy opening other messages; please try again in a few seconds."))
            response.headers[.retryAfter] = "5"
            return response
        } catch let error as EscrowError {
            return refusal(error)
        } catch {
            PortalLog.line("POST \(base)/\(id)/\(n): \(error)")
            return Self.html(.internalServerError, Pages.notice(base: base, title: "Something went wrong",
                "The message cannot be shown right now; please try again later."))
        }

        switch outcome {
        case .ask(let preview, let note):
            guard case .question(let question) = preview.proof else { return loginNotAvailable() }
            let page = Pages.question(base: base, action: "\(base)/\(id)/\(n)", csrf: cookie, secret: secret,
                                      preview: preview, question: question, note: note)
            return Self.html(note == nil ? .ok : .forbidden, page)
        case .opened(let bytes):
            do {
                return Self.html(.ok, Pages.message(base: base, try MessageView(message: bytes)))
            } catch {
                PortalLog.line("POST \(base)/\(id)/\(n): the opened message does not parse: \(error)")
                return Self.html(.internalServerError, Pages.notice(base: base, title: "Something went wrong",
                    "The message was opened but cannot be shown; ask the sender to send it again."))
            }
        }
    }

    func loginNotAvailable() -> Response {
        Self.html(.notImplemented, Pages.notice(base: base, title: "Not available yet",
            "This message is opened with an escrow account, which this portal does not offer yet: open it with sl-escrow open, or ask the sender for help."))
    }

    /// What the store refused, as a page. An unknown message and a wrong link give the
    /// same page and status, so a guessed link learns nothing.
    func refusal(_ error: EscrowError) -> Response {
        switch error {
        case .notFound, .wrongLink:
            return Self.notFound(base: base)
        case .lockedOut:
            return Self.html(.init(code: 423, reasonPhrase: "Locked"), Pages.notice(base: base, title: "Locked",
                "This message is locked after too many wrong answers; ask the sender to send it again."))
        case .retracted:
            return Self.html(.gone, Pages.notice(base: base, title: "Withdrawn", "The sender has withdrawn this message."))
        case .expired(let date):
            return Self.html(.gone, Pages.notice(base: base, title: "Expired",
                "This message expired on \(Pages.date(date)) and can no longer be opened."))
        case .wrongPassword:
            return loginNotAvailable()
        default:
            PortalLog.line("store: \(error)")
            return Self.html(.internalServerError, Pages.notice(base: base, title: "Something went wrong",
                "The message cannot be shown right now; please try again later."))
        }
    }

    // MARK: pieces

    static func notFound(base: String) -> Response {
        html(.notFound, Pages.notice(base: base, title: "No such message",
            "This link does not lead to a message: check that you copied the whole link from your notice."))
    }

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

    /// The message id and recipient number from the path, in the forms notices use.
    static func target(_ context: some RequestContext) -> (String, Int)? {
        guard let id = context.parameters.get("id"), id.count == 32,
              id.allSatisfy({ $0.isHexDigit && !$0.isUppercase }),
              let nText = context.parameters.get("n"), nText.count <= 4, nText.allSatisfy(\.isASCII),
              let n = Int(nText), n >= 0 else { return nil }
        return (id, n)
    }

    static func csrfToken(from request: Request) -> String? {
        guard let value = request.cookies[csrfCookie]?.value, value.count == 43,
              value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else { return nil }
        return value
    }

    /// 32 random octets, base64url without padding (43 characters).
    static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in x.indices { difference |= x[i] ^ y[i] }
        return difference == 0
    }

    /// application/x-www-form-urlencoded; the first value of a repeated name wins.
    static func parseForm(_ text: String) -> [String: String] {
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
