import Foundation
import Hummingbird
import SLEscrow
import SLMessage

/// "Reply securely": a recipient reading an escrow message in a session writes to
/// its sender. The reply is from the recipient's address (they proved it with the
/// link and the answer or password), to the original sender, `Re:` the subject
/// they have seen, threaded by In-Reply-To and References; it leaves through
/// portal_submit_command (by default the installed pipeline), so the
/// organisation's policy decides how its own user is reached. At most
/// portal_max_replies per recipient and message, reserved before the hand-over
/// and given back when it fails: nothing is half-sent, and a failure is shown.
extension Reading {
    func reply(_ request: Request, _ context: PortalContext) async -> Response {
        let form: UploadForm
        do { form = try await UploadForm.read(request, limit: state.uploadLimit) } catch { return Reply.refused(error, base: base) }
        guard let submitter = state.submitter, state.maxReplies > 0, case .recipient(let n)? = Self.reader(context) else {
            return Reply.notFound(base: base)
        }
        let (id, opened): (String, Opened)
        switch await open(request, context) {
        case .failure(let refused): return refused.response
        case .success(let r): (id, opened) = (r.0, r.2)
        }
        let path = "\(base)/read/\(id)/\(n)"
        let text = form["text"] ?? ""
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || !form.files.isEmpty else {
            return Reply.html(.badRequest, Pages.notice(base: base, title: "Nothing to send", "Write a reply or attach a file.", back: path))
        }
        let client = state.client(request, context)
        if let wait = state.limiter.admit(client, now: Date()) { return Reply.tooMany(base: base, retryAfter: wait) }

        let maximum = state.maxReplies
        let reservation: (Int64, MessageStatus)
        do {
            reservation = try await state.readers.run { store in
                (try store.reserveReply(id: id, index: n, maximum: maximum, now: Date()), try store.status(id: id))
            }
        } catch EscrowError.replyLimit(let limit) {
            return Reply.html(.tooManyRequests, Pages.notice(base: base, title: "No more replies",
                "You have sent \(limit) repl\(limit == 1 ? "y" : "ies") to this message, the most this portal allows.", back: path))
        } catch {
            return Reply.trouble(error, base: base, during: "POST \(path)/reply")
        }
        let (ticket, status) = reservation
        let replier = status.recipients.first { $0.index == n }?.address ?? ""
        do {
            let message = try Self.composeReply(to: opened.bytes, status: status, from: replier, text: text, files: form.files,
                                                hostname: state.hostname)
            let bytes = try message.bytes()
            try await submitter.run(bytes, arguments: ["-f", replier, "--", status.sender])
            try await state.readers.run { try $0.confirmReply(ticket, size: bytes.count, now: Date()) }
            state.record("reply", ["id": id, "index": n, "recipient": replier, "to": status.sender, "size": bytes.count, "client": client])
            return Reply.html(.ok, Pages.notice(base: base, title: "Reply sent",
                "Your reply to \(status.sender) is on its way, protected as the sender's organisation requires.", back: path))
        } catch {
            _ = try? await state.readers.run { try $0.cancelReply(ticket) }
            PortalLog.line("POST \(path)/reply: \(error)")
            let why = (error as? Composer.Refused)?.description ?? "it could not be handed on just now; nothing was sent. Please try again later"
            return Reply.html(error is Composer.Refused ? .badRequest : .serviceUnavailable,
                              Pages.notice(base: base, title: "Reply not sent", "Your reply was not sent: \(why).", back: path))
        }
    }

    /// The reply message: From the recipient, To the original sender (the address
    /// on the original's From field when it parses, else the envelope sender),
    /// `Re:` its subject, In-Reply-To and References from its Message-ID.
    static func composeReply(to original: Bytes, status: MessageStatus, from replier: String, text: String,
                             files: [UploadForm.File], hostname: String) throws -> Message {
        let header = try MIMEEntity.parse(original).header
        let to = header["From"].flatMap { try? AddressList.parse($0).first?.addrSpec } ?? status.sender
        var subject = header.first("Subject")?.decodedValue.trimmingCharacters(in: .whitespaces) ?? ""
        if !subject.lowercased().hasPrefix("re:") { subject = "Re: " + subject }
        var fields: [(String, String)] = [("From", try Composer.address(replier, "recipient's address")),
                                          ("To", try Composer.address(to, "sender's address")),
                                          ("Subject", EncodedWords.encodeIfNeeded(Composer.flattened(subject)))]
        if let messageID = header["Message-ID"]?.trimmingCharacters(in: .whitespaces),
           messageID.hasPrefix("<"), messageID.hasSuffix(">"), messageID.count < 500,
           !messageID.contains(where: { $0.isWhitespace || $0.isNewline }) {
            let earlier = header["References"].map { Composer.flattened($0).split(separator: " ").suffix(10).joined(separator: " ") }
            fields.append(("In-Reply-To", messageID))
            fields.append(("References", [earlier, messageID].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")))
        }
        return try Composer.message(fields: fields, text: text, files: files, hostname: hostname, date: Date())
    }
}
