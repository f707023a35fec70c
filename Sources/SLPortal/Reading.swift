import Foundation
import HTTPTypes
import Hummingbird
import SLEscrow
import SLMessage

/// Reading an opened message within a session: the message page, each part as a
/// download, the HTML parts' frames, and the whole original as .eml.
/// `{base}/read/{id}/{n}` for recipient n, `{base}/read/{id}/sent` for the sender
/// in the message center. Whose session may read what is decided here: a session
/// from a link reads that one message; an account session reads the account's own.
struct Reading: Sendable {
    let state: PortalState
    var base: String { state.base }

    enum Reader: Sendable, Equatable {
        case recipient(Int)
        case sender
        var path: String {
            switch self { case .recipient(let n): return String(n); case .sender: return "sent" }
        }
    }

    static func reader(_ context: some RequestContext) -> Reader? {
        guard let text = context.parameters.get("n") else { return nil }
        if text == "sent" { return .sender }
        guard text.count <= 4, text.allSatisfy(\.isASCII), let n = Int(text), n >= 0 else { return nil }
        return .recipient(n)
    }

    struct Opened: Sendable {
        var bytes: Bytes
        var expires: Date
        var account: Bool
    }

    /// The message for this session, or the page that says why not.
    func open(_ request: Request, _ context: PortalContext, record: Bool = false) async -> Result<(String, Reader, Opened), Refused> {
        guard let id = Pickup.messageID(context), let reader = Self.reader(context) else {
            return .failure(Refused(Reply.notFound(base: base)))
        }
        let now = Date()
        guard let grant = state.sessions.grant(request, now: now) else {
            return .failure(Refused(Reply.html(.forbidden, Pages.notice(base: base, title: "Session ended",
                "Your session has ended: open the link from your notice again, or sign in."))))
        }
        do {
            let opened = try await state.readers.run { store -> Opened in
                let key: ContentKey
                var account = false
                switch (grant, reader) {
                case (.message(let k), .recipient(let n)) where k.id == id && k.index == n:
                    key = k
                case (.message(let k), .sender) where k.id == id && k.index == nil:
                    key = k
                case (.account(let a), .recipient(let n)):
                    key = try store.unlock(id: id, index: n, account: a, now: now)
                    account = true
                case (.account(let a), .sender):
                    key = try store.unlockAsSender(id: id, account: a, now: now)
                    account = true
                default:
                    throw EscrowError.notFound
                }
                var bytes = Bytes()
                try store.read(key, recordOpen: record, now: now) { bytes.append(contentsOf: $0) }
                return Opened(bytes: bytes, expires: try store.status(id: id).expires, account: account)
            }
            return .success((id, reader, opened))
        } catch {
            return .failure(Refused(Reply.trouble(error, base: base, during: "GET \(base)/read/\(id)")))
        }
    }

    /// The page that says why a message cannot be read; never leaves the portal.
    struct Refused: Error, SysexitReporting {
        let response: Response
        init(_ r: Response) { response = r }
        var sysexit: Sysexit { .noPermission }
    }

    func view(_ request: Request, _ context: PortalContext) async -> Response {
        let (id, reader, opened): (String, Reader, Opened)
        switch await open(request, context, record: true) {
        case .failure(let refused): return refused.response
        case .success(let r): (id, reader, opened) = r
        }
        do {
            let view = try MessageView(message: opened.bytes)
            let (token, isNew) = CSRF.tokenOrNew(request)
            let path = "\(base)/read/\(id)/\(reader.path)"
            let canReply: Bool
            if case .recipient = reader { canReply = state.submitter != nil && state.maxReplies > 0 } else { canReply = false }
            var response = Reply.html(.ok, Pages.message(base: base, view, path: path, expires: opened.expires,
                                                         csrf: token, account: opened.account, replyPath: canReply ? path : nil))
            if isNew { response.headers[.setCookie] = CSRF.cookieHeader(token, base: base) }
            // The HTML parts are framed from this portal (sandboxed, their own CSP).
            response.headers[.contentSecurityPolicy] = PortalMiddleware.policy(frames: true)
            return response
        } catch {
            PortalLog.line("GET \(base)/read/\(id): the opened message does not parse: \(error)")
            return Reply.html(.internalServerError, Pages.notice(base: base, title: "Something went wrong",
                "The message was opened but cannot be shown; ask the sender to send it again."))
        }
    }

    /// Part k as a download, byte for byte as its sender attached it (decoded from
    /// its transfer encoding).
    func part(_ request: Request, _ context: PortalContext) async -> Response {
        switch await open(request, context) {
        case .failure(let refused): return refused.response
        case .success(let (_, _, opened)):
            guard let view = try? MessageView(message: opened.bytes), let k = Self.partNumber(context),
                  k < view.parts.count else { return Reply.notFound(base: base) }
            let part = view.parts[k]
            return Reply.download(part.body, name: part.kind == .attachment ? part.name : "part-\(k)\(part.kind == .html ? ".html" : ".txt")")
        }
    }

    /// The whole message as the sender sent it.
    func original(_ request: Request, _ context: PortalContext) async -> Response {
        switch await open(request, context) {
        case .failure(let refused): return refused.response
        case .success(let (id, _, opened)):
            return Reply.download(opened.bytes, name: "message-\(id.prefix(8)).eml", type: "message/rfc822")
        }
    }

    static func partNumber(_ context: some RequestContext) -> Int? {
        guard let text = context.parameters.get("k"), text.count <= 4, text.allSatisfy(\.isASCII), let k = Int(text), k >= 0 else { return nil }
        return k
    }
}
