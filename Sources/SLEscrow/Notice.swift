import Foundation
import SLMessage

/// The texts of an escrow notice: a subject and text and HTML bodies with
/// `{placeholders}`. Defaults are built in; an installation replaces any of them
/// (`escrow_notice_subject`, `escrow_notice_text`, `escrow_notice_html`).
///
/// Placeholders: `{sender}` (the original From), `{recipient}`, `{link}`,
/// `{question}` (empty in login mode), `{verification}` (a sentence that asks the
/// question, or says to sign in), `{expires}` (a date), `{id}`.
/// The default subject does not repeat the original subject, which may itself be
/// confidential ("Test results for ...").
public struct NoticeTemplates: Sendable {
    public var subject = "Secure message from {sender}"
    public var text = """
        {sender} has sent you a secure message.

        To read it, open this link:
        {link}

        {verification}
        The message can be read until {expires}.

        This link is for you alone: please do not forward this notice.

        """
    public var html = """
        <!DOCTYPE html>
        <html><body>
        <p>{sender} has sent you a secure message.</p>
        <p><a href="{link}">Read the secure message</a></p>
        <p>{verification}<br>The message can be read until {expires}.</p>
        <p>This link is for you alone: please do not forward this notice.</p>
        </body></html>

        """

    public init() {}

    /// What fills the placeholders for one recipient.
    public struct Values: Sendable {
        public var sender: String
        public var recipient: String
        public var link: String
        public var question: String?
        public var expires: Date
        public var id: String
        /// Login mode without an account yet: the link first asks for a new password.
        public var setsPassword: Bool
        public init(sender: String, recipient: String, link: String, question: String?, expires: Date, id: String,
                    setsPassword: Bool = false) {
            self.sender = sender; self.recipient = recipient; self.link = link
            self.question = question; self.expires = expires; self.id = id; self.setsPassword = setsPassword
        }
    }

    /// `{name}` replaced by `values[name]`, each value passed through `escape`;
    /// unknown names are left as they are.
    static func render(_ template: String, _ values: [String: String], escape: (String) -> String = { $0 }) -> String {
        var out = ""
        var rest = template[...]
        while let open = rest.firstIndex(of: "{") {
            // An unclosed "{" is text like the rest: leave it, and what precedes it, to `rest`.
            guard let close = rest[open...].firstIndex(of: "}") else { break }
            out += rest[..<open]
            let name = String(rest[rest.index(after: open)..<close])
            if let v = values[name] {
                out += escape(v)
            } else {
                out += rest[open...close]
            }
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }


    static func values(_ v: Values) -> [String: String] {
        let expires = DeliveryReport.rfc5322Date(v.expires)
        let verification = v.question.map { "You will be asked this question: \(OneLine.of($0))" }
            ?? (v.setsPassword
                ? "You have no secure-message account yet: the link first asks you to choose a password, which creates your account; keep it for later messages."
                : "Sign in with your escrow account to read it.")
        return ["sender": OneLine.of(v.sender), "recipient": v.recipient, "link": v.link, "question": v.question.map(OneLine.of) ?? "",
                "verification": verification, "expires": expires, "id": v.id]
    }

    /// The notice for one recipient: a new message to that recipient alone, text
    /// and HTML alternatives, no content of the original.
    public func notice(_ v: Values, from: String, hostname: String, date: Date) throws -> Message {
        let vals = Self.values(v)
        let subject = OneLine.of(Self.render(subject, vals))
        let textBody = Array(Self.render(text, vals).utf8)
        let htmlBody = Array(Self.render(html, vals, escape: HTMLText.escape).utf8)
        let ascii = (textBody + htmlBody).allSatisfy { $0 < 0x80 }
        let encoding: TransferEncoding = ascii ? .sevenBit : .quotedPrintable
        let utf8 = ["charset": "utf-8"]
        let body = try MIMEBuilder.multipart(subtype: "alternative", parts: [
            try MIMEBuilder.leaf(contentType: ContentType(type: "text", subtype: "plain", parameters: utf8), transferEncoding: encoding, body: textBody),
            try MIMEBuilder.leaf(contentType: ContentType(type: "text", subtype: "html", parameters: utf8), transferEncoding: encoding, body: htmlBody),
        ])
        // Two draws, not twelve: each draw is a getrandom(2) call.
        let messageID = "<escrow.\(String(UInt64.random(in: 0...UInt64.max), radix: 16)).\(String(UInt64.random(in: 0...UInt64.max), radix: 16))@\(hostname)>"
        var head = ""
        for (name, value) in [("From", from), ("To", v.recipient), ("Subject", EncodedWords.encodeIfNeeded(subject)),
                              ("Date", DeliveryReport.rfc5322Date(date)), ("Message-ID", messageID),
                              ("Auto-Submitted", "auto-generated"), ("MIME-Version", "1.0")] {
            head += "\(name): \(OneLine.of(value))\r\n"
        }
        return try Message(bytes: Array(head.utf8) + body.serialized())
    }

    /// Loads the installation's templates over the defaults.
    public static func load(subject: String?, textFile: String?, htmlFile: String?) throws -> NoticeTemplates {
        var t = NoticeTemplates()
        if let subject { t.subject = subject }
        func read(_ path: String) throws -> String {
            guard let data = FileManager.default.contents(atPath: path), let s = String(data: data, encoding: .utf8) else {
                throw MessageError.io("cannot read the notice template \(path) (UTF-8 text expected)")
            }
            return s
        }
        if let textFile { t.text = try read(textFile) }
        if let htmlFile { t.html = try read(htmlFile) }
        return t
    }
}

/// A recipient's link: `URL/ID/N#SECRET`. The secret is in the fragment, which
/// browsers never send to the server, so web server logs never hold it; the
/// recipient's address is not in it at all.
public struct EscrowLink: Sendable, Equatable {
    public var id: String
    public var index: Int
    public var secret: String

    public init(id: String, index: Int, secret: String) { self.id = id; self.index = index; self.secret = secret }

    public func url(base: String) -> String { "\(base)/\(id)/\(index)#\(secret)" }

    /// Parses a link as printed in a notice (surrounding white space and angle
    /// brackets allowed); nil when it is not one.
    public init?(parsing text: String) {
        var s = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if s.hasPrefix("<") && s.hasSuffix(">") { s = String(s.dropFirst().dropLast()) }
        guard let hash = s.lastIndex(of: "#") else { return nil }
        let secret = String(s[s.index(after: hash)...])
        let parts = s[..<hash].split(separator: "/")
        guard parts.count >= 2, let index = Int(parts[parts.count - 1]), index >= 0, index < 10_000 else { return nil }
        let id = String(parts[parts.count - 2])
        // On octets: Character.isHexDigit holds for the fullwidth forms (U+FF10...) too.
        guard id.utf8.count == 32, id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }),
              (40...64).contains(secret.count),
              secret.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else { return nil }
        self.init(id: id, index: index, secret: secret)
    }
}

/// The read receipt a sender gets when a recipient opens an escrowed message:
/// plain text from `from`, routed for ordinary delivery from the null sender (a
/// receipt must not bounce back). It names who opened which message and when,
/// never the content.
public enum ReadReceipt {
    /// Names the message by its Message-ID and the date it was sent (never its
    /// subject, which the store does not hold), and threads with it.
    public static func message(for r: Receipt, from: String, date: Date) throws -> Message {
        let which = [r.originalID.map { "\(OneLine.of($0)) " }, r.sent.map { "of \(DeliveryReport.rfc5322Date($0)) " }]
            .compactMap { $0 }.joined()
        return try receipt(to: r.sender, subject: "Read: secure message to \(r.recipient)", text: """
            Your secure message \(which)to \(r.recipient) was opened on \(DeliveryReport.rfc5322Date(r.opened)).
            Escrow id: \(r.id)

            This is a read receipt from the escrow service; the message itself stays sealed.

            """, from: from, date: date, inReplyTo: r.originalID)
    }

    /// A receipt of either kind (escrow opens, Tracking.swift's tracked opens):
    /// plain text to the sender, routed for ordinary delivery from the null sender.
    static func receipt(to sender: String, subject: String, text: String, from: String, date: Date,
                        inReplyTo: String? = nil) throws -> Message {
        var head = ""
        var fields = [("From", from), ("To", sender), ("Subject", OneLine.of(subject)),
                      ("Date", DeliveryReport.rfc5322Date(date)), ("Auto-Submitted", "auto-generated"),
                      ("MIME-Version", "1.0"), ("Content-Type", "text/plain; charset=utf-8"),
                      ("Content-Transfer-Encoding", "8bit")]
        // Threaded with the original in the sender's mail client.
        if let id = inReplyTo.map(OneLine.of), id.hasPrefix("<"), id.hasSuffix(">"), !id.contains(" ") {
            fields += [("In-Reply-To", id), ("References", id)]
        }
        for (name, value) in fields {
            head += "\(name): \(value)\r\n"
        }
        var m = try Message(bytes: Array((head + "\r\n" + text).utf8))
        let routing = Envelope(sender: "", recipients: [Envelope.Recipient(address: sender)], method: .insecure,
                               tls: .opportunistic, fallback: .insecure)
        try routing.write(into: &m.header)
        return m
    }
}

/// Mail that carries a one-time link of the portal's to an address: a password
/// reset, or the confirmation of a SecureSend message. Routed like a notice (it
/// holds a link, no message content), so sl-deliver sends it as it sends notices,
/// from the null sender: it must not bounce back.
public enum AccountMail {
    public static func passwordReset(to address: String, link: String, from: String, hostname: String, date: Date,
                                     valid: TimeInterval) throws -> Message {
        try mail(to: address, subject: "Set a new password for your secure messages", from: from, hostname: hostname, date: date, text: """
            Someone, probably you, asked to set a new password for your secure-message
            account \(address).

            To choose a new password, open this link within \(Int(valid / 60)) minutes:
            \(link)

            Messages sealed for your old password cannot be opened with the new one:
            their senders will have to send them again. If you did not ask for this,
            ignore this mail; your password stays as it is.

            """)
    }

    public static func secureSendConfirmation(to address: String, recipient: String, link: String, from: String,
                                              hostname: String, date: Date, valid: TimeInterval) throws -> Message {
        try mail(to: address, subject: "Confirm your secure message to \(OneLine.of(recipient))", from: from,
                 hostname: hostname, date: date, text: """
            Someone, probably you, wrote a secure message to \(recipient) on our
            secure-message form, giving this address as theirs.

            To deliver it, open this link within \(Int(valid / 3600)) hours:
            \(link)

            Until then the message waits, sealed; if the link is not used it is
            destroyed unsent. If you did not write it, ignore this mail.

            """)
    }

    static func mail(to address: String, subject: String, from: String, hostname: String, date: Date, text: String) throws -> Message {
        var head = ""
        let messageID = "<account.\(String(UInt64.random(in: 0...UInt64.max), radix: 16))@\(hostname)>"
        for (name, value) in [("From", from), ("To", address), ("Subject", EncodedWords.encodeIfNeeded(subject)),
                              ("Date", DeliveryReport.rfc5322Date(date)), ("Message-ID", messageID),
                              ("Auto-Submitted", "auto-generated"), ("MIME-Version", "1.0"),
                              ("Content-Type", "text/plain; charset=utf-8"), ("Content-Transfer-Encoding", "8bit")] {
            head += "\(name): \(OneLine.of(value))\r\n"
        }
        var m = try Message(bytes: Array((head + "\r\n" + text).utf8))
        let routing = Envelope(sender: "",
                               recipients: [Envelope.Recipient(address: address, parameters: [(.escrow, Envelope.EscrowMode.notice.rawValue)])],
                               method: .escrow, tls: .opportunistic, fallback: .insecure)
        try routing.write(into: &m.header)
        return m
    }
}
