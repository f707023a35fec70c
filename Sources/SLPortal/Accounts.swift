import Foundation
import Hummingbird
import SLEscrow
import SLMessage

/// Escrow accounts on the portal: sign in and out, the message center (the
/// account's messages, and with escrow_message_center what it sent, with
/// retraction), and a new password by a link mailed to the address.
struct Accounts: Sendable {
    let state: PortalState
    var base: String { state.base }

    // MARK: sign in

    func signInPage(_ request: Request, _ context: PortalContext) -> Response {
        withCSRF(request) { Pages.signIn(base: base, csrf: $0, note: nil) }
    }

    func signIn(_ request: Request, _ context: PortalContext) async -> Response {
        let form: Form
        do { form = try await Form.read(request) } catch { return Reply.refused(error, base: base) }
        let address = (form["address"] ?? "").trimmingCharacters(in: .whitespaces)
        let password = form["password"] ?? ""
        guard !address.isEmpty, address.count <= 320, !password.isEmpty else {
            return Reply.html(.badRequest, Pages.signIn(base: base, csrf: form.csrf, note: "Type your address and your password."))
        }
        let client = state.client(request, context)
        if let wait = state.limiter.admit(client, now: Date()) { return Reply.tooMany(base: base, retryAfter: wait) }
        let kdf = state.kdf
        do {
            let account = try await state.pool.run { try $0.signIn(address: address, password: password, parameters: kdf) }
            state.record("sign-in", ["account": account.address, "client": client])
            let cookie = state.sessions.start(.account(account), base: base, now: Date())
            return Reply.seeOther("\(base)/messages", cookies: [cookie])
        } catch EscrowError.wrongPassword {
            state.record("sign-in refused", ["account": address.lowercased(), "client": client])
            return Reply.html(.forbidden, Pages.signIn(base: base, csrf: form.csrf, note: "That address and password do not match an account."))
        } catch {
            return Reply.trouble(error, base: base, during: "POST \(base)/account")
        }
    }

    func signOut(_ request: Request, _ context: PortalContext) async -> Response {
        do { _ = try await Form.read(request) } catch { return Reply.refused(error, base: base) }
        var response = Reply.html(.ok, Pages.notice(base: base, title: "Signed out",
            "You are signed out. Close this window, or open a link from a notice to read a message again."))
        response.headers[.setCookie] = state.sessions.end(request, base: base)
        return response
    }

    // MARK: message center

    func center(_ request: Request, _ context: PortalContext) async -> Response {
        guard case .account(let account)? = state.sessions.grant(request, now: Date()) else {
            return Reply.seeOther("\(base)/account")
        }
        let withSent = state.messageCenter, withForm = state.secureSend != nil
        do {
            let (inbox, sent, written) = try await state.readers.run { store in
                (try store.inbox(for: account, now: Date()), withSent ? try store.sent(by: account) : [],
                 withForm ? try store.inbound(sentBy: account) : [])
            }
            return withCSRF(request) {
                Pages.center(base: base, account: account.address, inbox: inbox, sent: withSent ? sent : nil,
                             written: withForm ? written : nil, csrf: $0, now: Date())
            }
        } catch {
            return Reply.trouble(error, base: base, during: "GET \(base)/messages")
        }
    }

    func retract(_ request: Request, _ context: PortalContext) async -> Response {
        do { _ = try await Form.read(request) } catch { return Reply.refused(error, base: base) }
        guard state.messageCenter, let id = Pickup.messageID(context) else { return Reply.notFound(base: base) }
        guard case .account(let account)? = state.sessions.grant(request, now: Date()) else {
            return Reply.seeOther("\(base)/account")
        }
        do {
            try await state.readers.run { try $0.retract(id: id, by: account, now: Date()) }
            state.record("retract", ["id": id, "account": account.address, "client": state.client(request, context)])
            return Reply.seeOther("\(base)/messages")
        } catch {
            return Reply.trouble(error, base: base, during: "POST \(base)/messages/\(id)/retract")
        }
    }

    // MARK: a new password by mail

    func resetPage(_ request: Request, _ context: PortalContext) -> Response {
        withCSRF(request) { Pages.resetRequest(base: base, csrf: $0, available: state.mailer != nil) }
    }

    /// Always the same answer, whether or not the address has an account.
    func requestReset(_ request: Request, _ context: PortalContext) async -> Response {
        let form: Form
        do { form = try await Form.read(request) } catch { return Reply.refused(error, base: base) }
        let address = (form["address"] ?? "").trimmingCharacters(in: .whitespaces)
        guard let mailer = state.mailer, (try? EmailAddress(parsing: address)) != nil else {
            return Reply.html(.badRequest, Pages.resetRequest(base: base, csrf: form.csrf, available: state.mailer != nil,
                                                              note: "Type the address your secure messages come to."))
        }
        let client = state.client(request, context)
        if let wait = state.limiter.admit(client, now: Date()) { return Reply.tooMany(base: base, retryAfter: wait) }
        do {
            if let token = try await state.readers.run({ try $0.issueResetToken(address: address, now: Date()) }) {
                let mail = try AccountMail.passwordReset(to: address, link: "\(state.publicURL)/account/password#\(token)",
                                                         from: state.mailFrom, hostname: state.hostname, date: Date(),
                                                         valid: EscrowStore.resetLifetime)
                try await mailer.send(mail)
                state.record("password link sent", ["account": address.lowercased(), "client": client])
            }
        } catch is StorePool.Busy {
            return Reply.busy(base: base)
        } catch {
            PortalLog.line("POST \(base)/account/reset: \(error)")
        }
        return Reply.html(.ok, Pages.notice(base: base, title: "Check your mail",
            "If there is an account for that address, a link to set a new password is on its way to it. The link works once, for an hour."))
    }

    func newPasswordPage(_ request: Request, _ context: PortalContext) -> Response {
        withCSRF(request) { Pages.newPassword(base: base, csrf: $0, note: nil) }
    }

    func setNewPassword(_ request: Request, _ context: PortalContext) async -> Response {
        let form: Form
        do { form = try await Form.read(request) } catch { return Reply.refused(error, base: base) }
        let token = form["token"] ?? ""
        let password = form["password"] ?? ""
        guard Tokens.isToken(token) else { return resetLinkInvalid() }
        if let problem = Pickup.newPasswordProblem(password, form["password2"]) {
            return Reply.html(.badRequest, Pages.newPassword(base: base, csrf: form.csrf, note: problem, token: token))
        }
        let client = state.client(request, context)
        if let wait = state.limiter.admit(client, now: Date()) { return Reply.tooMany(base: base, retryAfter: wait) }
        let kdf = state.kdf
        do {
            let address = try await state.pool.run { try $0.resetPassword(token: token, password: password, parameters: kdf, now: Date()) }
            state.record("password reset", ["account": address, "client": client])
            return Reply.html(.ok, Pages.notice(base: base, title: "Password set",
                "Your new password is set. Messages sealed for your old password cannot be opened any more; their senders will have to send them again. Sign in to see your messages."))
        } catch EscrowError.wrongToken {
            return resetLinkInvalid()
        } catch {
            return Reply.trouble(error, base: base, during: "POST \(base)/account/password")
        }
    }

    func resetLinkInvalid() -> Response {
        Reply.html(.notFound, Pages.notice(base: base, title: "Link not valid",
            "This password link is not valid: it was used already, is older than an hour, or was not copied whole. Ask for a new one."))
    }

    // MARK: pieces

    /// A page with a form: the request's CSRF token, or a new one set as a cookie.
    func withCSRF(_ request: Request, _ page: (String) -> String) -> Response {
        let (token, isNew) = CSRF.tokenOrNew(request)
        var response = Reply.html(.ok, page(token))
        if isNew { response.headers[.setCookie] = CSRF.cookieHeader(token, base: base) }
        return response
    }
}
