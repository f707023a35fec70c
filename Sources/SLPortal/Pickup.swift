import Foundation
import Hummingbird
import SLEscrow
import SLMessage

/// The pickup pages at a notice's link: the link page (GET), then, posted, the
/// question, the password, or for a login recipient without an account the new
/// password; a right one starts a session and leads to the message. The link secret
/// comes in a form body, never in a URL; answers and passwords likewise.
struct Pickup: Sendable {
    let state: PortalState
    var base: String { state.base }
    /// The link page, rendered once: every link's page differs only in its action
    /// and its CSRF token.
    let linkPage: PageTemplate

    init(state: PortalState) {
        self.state = state
        let base = state.base
        linkPage = PageTemplate { action, csrf in Pages.pickup(base: base, action: action, csrf: csrf) }
    }

    // MARK: GET {base}/{id}/{n}

    func page(_ request: Request, _ context: PortalContext) -> Response {
        guard let (id, n) = Self.target(context) else { return Reply.notFound(base: base) }
        let (token, isNew) = CSRF.tokenOrNew(request)
        var response = Reply.html(.ok, linkPage.fill(action: "\(base)/\(id)/\(n)", csrf: token))
        if isNew { response.headers[.setCookie] = CSRF.cookieHeader(token, base: base) }
        return response
    }

    // MARK: POST {base}/{id}/{n}

    enum Outcome: Sendable {
        case ask(PickupPreview, note: String?)
        case opened(ContentKey, address: String, how: String)
    }

    func answer(_ request: Request, _ context: PortalContext) async -> Response {
        let form: Form
        do { form = try await Form.read(request) } catch { return Reply.refused(error, base: base) }
        guard let (id, n) = Self.target(context) else { return Reply.notFound(base: base) }
        var secret = form["secret"] ?? ""
        if secret.isEmpty, let pasted = form["link"] {
            guard let link = EscrowLink(parsing: pasted), link.id == id, link.index == n else { return Reply.notFound(base: base) }
            secret = link.secret
        }
        guard !secret.isEmpty, secret.count <= 128 else { return Reply.notFound(base: base) }
        let linkSecret = secret
        let answer = form["answer"].map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.flatMap { $0.isEmpty ? nil : $0 }
        let password = form["password"].flatMap { $0.isEmpty ? nil : $0 }
        let settingUp = form["setup"] == "1"
        let client = state.client(request, context)

        if settingUp, let password {
            if let problem = Self.newPasswordProblem(password, form["password2"]) {
                return await ask(id, n, linkSecret, form.csrf, note: problem, status: .badRequest)
            }
        }
        if answer != nil || password != nil, let wait = state.limiter.admit(client, now: Date()) {
            return Reply.tooMany(base: base, retryAfter: wait)
        }
        let kdf = state.kdf
        let outcome: Outcome
        do {
            outcome = try await state.pool.run { store in
                let now = Date()
                do {
                    if let answer {
                        let key = try store.unlock(id: id, index: n, linkSecret: linkSecret, answer: answer, now: now)
                        return .opened(key, address: try store.preview(id: id, index: n, linkSecret: linkSecret, now: now).recipient, how: "answer")
                    }
                    if let password, settingUp {
                        let key = try store.setUpAccount(id: id, index: n, linkSecret: linkSecret, password: password,
                                                         parameters: kdf, now: now)
                        return .opened(key, address: try store.status(id: id).recipients.first { $0.index == n }?.address ?? "",
                                       how: "new account")
                    }
                    if let password {
                        let key = try store.unlock(id: id, index: n, linkSecret: linkSecret, password: password, now: now)
                        return .opened(key, address: try store.status(id: id).recipients.first { $0.index == n }?.address ?? "",
                                       how: "password")
                    }
                    let preview = try store.preview(id: id, index: n, linkSecret: linkSecret, now: now)
                    return .ask(preview, note: form["answer"] != nil || form["password"] != nil ? "Type your answer to open the message." : nil)
                } catch EscrowError.wrongAnswer(let remaining) {
                    let preview = try store.preview(id: id, index: n, linkSecret: linkSecret, now: now)
                    return .ask(preview, note: "That answer is not right. \(remaining) attempt\(remaining == 1 ? "" : "s") left.")
                } catch EscrowError.wrongPassword {
                    let preview = try store.preview(id: id, index: n, linkSecret: linkSecret, now: now)
                    return .ask(preview, note: "That password is not right. \(preview.attemptsLeft) attempt\(preview.attemptsLeft == 1 ? "" : "s") left.")
                }
            }
        } catch {
            return Reply.trouble(error, base: base, during: "POST \(base)/\(id)/\(n)")
        }

        switch outcome {
        case .ask(let preview, let note):
            return Reply.html(note == nil ? .ok : .forbidden,
                              Pages.proof(base: base, action: "\(base)/\(id)/\(n)", csrf: form.csrf, secret: secret,
                                          preview: preview, note: note))
        case .opened(let key, let address, let how):
            state.record("open", ["id": id, "index": n, "recipient": address, "proof": how, "client": client])
            let cookie = state.sessions.start(.message(key), base: base, now: Date())
            return Reply.seeOther("\(base)/read/\(id)/\(n)", cookies: [cookie])
        }
    }

    /// The proof page again (a new password that does not do), with a note.
    func ask(_ id: String, _ n: Int, _ secret: String, _ csrf: String, note: String, status: HTTPResponse.Status) async -> Response {
        do {
            let preview = try await state.readers.run { try $0.preview(id: id, index: n, linkSecret: secret, now: Date()) }
            return Reply.html(status, Pages.proof(base: base, action: "\(base)/\(id)/\(n)", csrf: csrf, secret: secret,
                                                  preview: preview, note: note))
        } catch {
            return Reply.trouble(error, base: base, during: "POST \(base)/\(id)/\(n)")
        }
    }

    static func newPasswordProblem(_ password: String, _ repeated: String?) -> String? {
        if password.count < PortalState.minimumPasswordLength {
            return "Choose a password of at least \(PortalState.minimumPasswordLength) characters."
        }
        if let repeated, repeated != password { return "The two passwords are not the same; type them again." }
        return nil
    }

    /// What the store refused, as a page. An unknown message and a wrong link give the
    /// same page and status, so a guessed link learns nothing.
    static func refusal(_ error: EscrowError, base: String) -> Response {
        switch error {
        case .notFound, .wrongLink:
            return Reply.notFound(base: base)
        case .lockedOut:
            return Reply.html(.init(code: 423, reasonPhrase: "Locked"), Pages.notice(base: base, title: "Locked",
                "This message is locked after too many wrong answers or passwords; ask the sender to send it again."))
        case .retracted:
            return Reply.html(.gone, Pages.notice(base: base, title: "Withdrawn", "The sender has withdrawn this message."))
        case .expired(let date):
            return Reply.html(.gone, Pages.notice(base: base, title: "Expired",
                "This message expired on \(Pages.date(date)) and can no longer be opened."))
        case .sealedForEarlierPassword:
            return Reply.html(.gone, Pages.notice(base: base, title: "Sealed for your earlier password",
                "This message was sealed for your account before its password was reset, and nothing can open it now: ask the sender to send it again."))
        case .linkNeeded:
            return Reply.html(.forbidden, Pages.notice(base: base, title: "Open it from your notice",
                "This message was sealed before your account existed: open it once with the link in its notice; after that it opens here too."))
        case .accountExists:
            return Reply.html(.conflict, Pages.notice(base: base, title: "You have an account",
                "An account for this address exists already: open the link from your notice again and sign in with its password."))
        default:
            PortalLog.line("store: \(error)")
            return Reply.failure(base: base)
        }
    }

    /// The message id and recipient number from the path, in the forms notices use.
    static func target(_ context: some RequestContext) -> (String, Int)? {
        guard let id = messageID(context),
              let nText = context.parameters.get("n"), nText.count <= 4, nText.allSatisfy(\.isASCII),
              let n = Int(nText), n >= 0 else { return nil }
        return (id, n)
    }

    static func messageID(_ context: some RequestContext) -> String? {
        guard let id = context.parameters.get("id"), id.count == 32,
              id.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
        return id
    }
}
