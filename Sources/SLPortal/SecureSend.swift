import Foundation
import Hummingbird
import SLEscrow
import SLMessage

/// SecureSend: the public form (escrow_url/send) through which anyone writes a
/// secure message to one of portal_securesend_recipients. The sender proves their
/// address first: the message waits sealed in the store (never plaintext on disk)
/// while a one-time link goes to that address; following it hands the message on
/// through portal_submit_command with --require-tls. A sender signed in with an
/// escrow account is proven already and sent at once. Limits: attempts per client
/// and per sender address a minute, portal_securesend_daily per sender, and
/// portal_upload_limit; every refusal says why.
struct SecureSend: Sendable {
    let state: PortalState
    var base: String { state.base }

    func page(_ request: Request, _ context: PortalContext) async -> Response {
        guard let settings = state.secureSend, state.submitter != nil else { return Reply.notFound(base: base) }
        let (token, isNew) = CSRF.tokenOrNew(request)
        var response = Reply.html(.ok, Pages.secureSend(base: base, csrf: token, recipients: settings.recipients,
                                                        signedIn: signedIn(request)?.address))
        if isNew { response.headers[.setCookie] = CSRF.cookieHeader(token, base: base) }
        return response
    }

    func signedIn(_ request: Request) -> AccountKey? {
        if case .account(let a)? = state.sessions.grant(request, now: Date()) { return a }
        return nil
    }

    func submit(_ request: Request, _ context: PortalContext) async -> Response {
        guard let settings = state.secureSend, let submitter = state.submitter else { return Reply.notFound(base: base) }
        let form: UploadForm
        do { form = try await UploadForm.read(request, limit: state.uploadLimit) } catch { return Reply.refused(error, base: base) }
        let account = signedIn(request)
        func again(_ note: String, _ status: HTTPResponse.Status = .badRequest) -> Response {
            Reply.html(status, Pages.secureSend(base: base, csrf: form.csrf, recipients: settings.recipients,
                                                signedIn: account?.address, note: note))
        }
        let client = state.client(request, context)
        let now = Date()
        let message: Message, sender: String, recipient: String
        do {
            sender = try account?.address ?? Composer.address(form["from"] ?? "", "your address")
            recipient = try Composer.address(form["to"] ?? "", "recipient")
            guard settings.allows(recipient) else { return again("This form cannot write to \(recipient).") }
            let subject = try Composer.oneLine((form["subject"] ?? "").trimmingCharacters(in: .whitespaces), "subject", limit: 200)
            let text = form["text"] ?? ""
            guard !subject.isEmpty, !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || !form.files.isEmpty else {
                return again("Write a subject and a message.")
            }
            let proof = account == nil ? "proven by a one-time link mailed to that address" : "signed in with an escrow account"
            message = try Composer.message(fields: [
                ("From", sender), ("To", recipient), ("Subject", EncodedWords.encodeIfNeeded(subject)),
                ("X-SecureSend", "sender \(sender) \(proof); written on \(state.publicURL)/send from \(client)"),
            ], text: text, files: form.files, hostname: state.hostname, date: now)
        } catch let refused as Composer.Refused {
            return again("Not sent: \(refused.description).")
        } catch {
            return Reply.trouble(error, base: base, during: "POST \(base)/send")
        }
        for key in [client, "sender " + sender] {
            if let wait = state.limiter.admit(key, now: now) { return Reply.tooMany(base: base, retryAfter: wait) }
        }
        let daily = settings.daily
        do {
            let sent = try await state.readers.run { try $0.inboundCount(sender: sender, since: now.addingTimeInterval(-86_400)) }
            guard sent < daily else { throw EscrowError.dailyLimit(daily) }
            let bytes = try message.bytes()
            if let account {
                try await submitter.run(bytes, arguments: Self.handOver(sender: sender, recipient: recipient))
                try await state.readers.run { try $0.recordInbound(sender: account.address, recipient: recipient, size: bytes.count, now: Date()) }
                state.record("securesend delivered", ["sender": sender, "recipient": recipient, "proof": "account", "client": client])
                return Reply.html(.ok, Pages.notice(base: base, title: "Sent", "Your message to \(recipient) is on its way."))
            }
            guard let mailer = state.mailer else { return Reply.failure(base: base) }
            let expiry = settings.expiry
            let held = try await state.readers.run { store in
                try store.holdInbound(message, sender: sender, recipient: recipient, now: now, expires: now.addingTimeInterval(expiry))
            }
            try await mailer.send(try AccountMail.secureSendConfirmation(
                to: sender, recipient: recipient, link: "\(state.publicURL)/send/verify#\(held.token)", from: state.mailFrom,
                hostname: state.hostname, date: now, valid: expiry))
            state.record("securesend held", ["id": held.id, "sender": sender, "recipient": recipient, "client": client])
            return Reply.html(.ok, Pages.notice(base: base, title: "Check your mail",
                "We have mailed a link to \(sender). Your message to \(recipient) is delivered once you open it; until then it waits, sealed."))
        } catch EscrowError.dailyLimit(let n) {
            return again("\(sender) has sent \(n) messages through this form today, the most it allows; please try again tomorrow.", .tooManyRequests)
        } catch let failed as Handover.Failed {
            PortalLog.line("POST \(base)/send: \(failed)")
            return again("Your message could not be handed on just now and was not sent; please try again later.", .serviceUnavailable)
        } catch {
            return Reply.trouble(error, base: base, during: "POST \(base)/send")
        }
    }

    /// What the submit command gets after its own arguments.
    static func handOver(sender: String, recipient: String) -> [String] {
        ["--require-tls", "-f", sender, "--", recipient]
    }

    func verifyPage(_ request: Request, _ context: PortalContext) -> Response {
        guard state.secureSend != nil else { return Reply.notFound(base: base) }
        let (token, isNew) = CSRF.tokenOrNew(request)
        var response = Reply.html(.ok, Pages.secureSendVerify(base: base, csrf: token))
        if isNew { response.headers[.setCookie] = CSRF.cookieHeader(token, base: base) }
        return response
    }

    /// The link followed: the held message goes on once; its content is destroyed.
    func verify(_ request: Request, _ context: PortalContext) async -> Response {
        guard state.secureSend != nil, let submitter = state.submitter else { return Reply.notFound(base: base) }
        let form: Form
        do { form = try await Form.read(request) } catch { return Reply.refused(error, base: base) }
        let token = form["token"] ?? ""
        let invalid = Reply.html(.notFound, Pages.notice(base: base, title: "Link not valid",
            "This link is not valid: the message was delivered already, waited too long and was destroyed, or the link was not copied whole."))
        guard Tokens.isToken(token) else { return invalid }
        let client = state.client(request, context)
        if let wait = state.limiter.admit(client, now: Date()) { return Reply.tooMany(base: base, retryAfter: wait) }
        do {
            let held = try await state.readers.run { try $0.releaseInbound(token: token, now: Date()) }
            try await submitter.run(held.message, arguments: Self.handOver(sender: held.sender, recipient: held.recipient))
            try await state.readers.run { try $0.markInboundDelivered(id: held.id, now: Date()) }
            state.record("securesend delivered", ["id": held.id, "sender": held.sender, "recipient": held.recipient,
                                                  "proof": "mail link", "client": client])
            return Reply.html(.ok, Pages.notice(base: base, title: "Delivered", "Your message to \(held.recipient) is on its way."))
        } catch EscrowError.wrongToken {
            return invalid
        } catch let failed as Handover.Failed {
            PortalLog.line("POST \(base)/send/verify: \(failed)")
            return Reply.html(.serviceUnavailable, Pages.notice(base: base, title: "Not delivered yet",
                "Your message could not be handed on just now; it still waits. Open the link again later."))
        } catch {
            return Reply.trouble(error, base: base, during: "POST \(base)/send/verify")
        }
    }
}
