import Foundation
import SLMessage
import SLEscrow

/// The portal's pages: small, static HTML with our own stylesheet and script, no
/// inline script or style (the Content-Security-Policy forbids both), every value
/// from the store or the message escaped.
enum Pages {
    static func escape(_ text: String) -> String { HTMLText.escape(text) }

    static func document(base: String, title: String, script: Bool = false, _ body: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <title>\(escape(title))</title>
        <link rel="stylesheet" href="\(escape(base))/static/portal.css">
        \(script ? "<script src=\"\(escape(base))/static/pickup.js\" defer></script>\n" : "")</head>
        <body>
        <main>
        <h1>\(escape(title))</h1>
        \(body)
        </main>
        </body>
        </html>

        """
    }

    static func hidden(_ name: String, _ value: String, id: String? = nil) -> String {
        "<input type=\"hidden\" name=\"\(name)\"\(id.map { " id=\"\($0)\"" } ?? "") value=\"\(escape(value))\">"
    }

    /// The first page: our script moves the secret from the fragment into a form and
    /// posts it; without script (or without a fragment) the recipient pastes the link.
    static func pickup(base: String, action: String, csrf: String) -> String {
        let paste = """
            <form method="post" action="\(escape(action))">
            \(hidden("csrf", csrf))
            <label for="link">Paste the whole link from your notice</label>
            <input type="text" name="link" id="link" autocomplete="off" spellcheck="false" required>
            <button type="submit">Continue</button>
            </form>
            """
        return document(base: base, title: "Secure message", script: true, """
            <form method="post" action="\(escape(action))" id="pickup" data-fragment="secret" data-submit="yes">
            \(hidden("csrf", csrf))
            \(hidden("secret", "", id: "secret"))
            </form>
            <p id="opening" hidden>Opening your message…</p>
            <div id="paste" hidden>
            \(paste)
            </div>
            <noscript>
            \(paste)
            </noscript>
            """)
    }

    static func date(_ d: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "d MMMM yyyy, HH:mm 'UTC'"
        return f.string(from: d)
    }

    /// The second page: what the recipient proves, by the kind the message asks for.
    static func proof(base: String, action: String, csrf: String, secret: String, preview: PickupPreview, note: String?) -> String {
        var body = """
            <p>From <strong>\(escape(preview.sender))</strong> to \(escape(preview.recipient)).
            It can be opened until \(escape(date(preview.expires))).</p>
            \(note.map { "<p class=\"note\" id=\"note\">\(escape($0))</p>" } ?? "")
            <form method="post" action="\(escape(action))">
            \(hidden("csrf", csrf))
            \(hidden("secret", secret))

            """
        let attempts = "\(preview.attemptsLeft) attempt\(preview.attemptsLeft == 1 ? "" : "s") left."
        switch preview.proof {
        case .question(let question):
            body += """
                <label for="answer">\(escape(question.isEmpty ? "Your answer" : question))</label>
                <input type="text" name="answer" id="answer" autocomplete="off" spellcheck="false" autofocus required>
                <button type="submit">Open the message</button>
                </form>
                <p class="small">The sender chose this question. \(attempts)</p>

                """
        case .login:
            body += """
                <label for="password">Password of your secure-message account</label>
                <input type="password" name="password" id="password" autocomplete="current-password" autofocus required>
                <button type="submit">Open the message</button>
                </form>
                <p class="small">\(attempts) <a href="\(escape(base))/account/reset">Forgot your password?</a></p>

                """
        case .setPassword:
            body += """
                \(hidden("setup", "1"))
                <p>You have no secure-message account yet. Choose a password: it creates your account, opens this
                message, and opens later messages to \(escape(preview.recipient)).</p>
                <label for="password">New password (at least \(PortalState.minimumPasswordLength) characters)</label>
                <input type="password" name="password" id="password" autocomplete="new-password" minlength="\(PortalState.minimumPasswordLength)" autofocus required>
                <label for="password2">The same password again</label>
                <input type="password" name="password2" id="password2" autocomplete="new-password" required>
                <button type="submit">Create my account and open the message</button>
                </form>
                <p class="small">Anyone who can read your mail could do this too, which is why you should do it now.</p>

                """
        }
        return document(base: base, title: "Secure message", body)
    }

    /// An opened message: fields, expiry, text, HTML parts in sandboxed frames,
    /// attachments to download, the original, and sign-out.
    static func message(base: String, _ view: MessageView, path: String, expires: Date, csrf: String, account: Bool,
                        replyPath: String? = nil) -> String {
        var body = "<dl class=\"fields\">\n"
        for (name, value) in view.fields {
            body += "<dt>\(escape(name))</dt><dd>\(escape(value))</dd>\n"
        }
        body += "<dt>Readable until</dt><dd>\(escape(date(expires)))</dd>\n</dl>\n"
        for part in view.parts where part.kind == .text {
            body += "<pre class=\"text\">\(escape(part.text ?? ""))</pre>\n"
        }
        for part in view.htmlParts {
            body += """
                <iframe class="html" sandbox="allow-popups allow-popups-to-escape-sandbox" referrerpolicy="no-referrer" \
                title="HTML version" src="\(escape(path))/html/\(part.number)"></iframe>

                """
        }
        if view.texts.isEmpty && view.htmlParts.isEmpty {
            body += "<p class=\"note\">This message has no text to show.</p>\n"
        }
        if !view.attachments.isEmpty {
            body += "<h2>Attachments</h2>\n<ul class=\"attachments\">\n"
            for a in view.attachments {
                body += "<li><a href=\"\(escape(path))/part/\(a.number)\" download>\(escape(a.name))</a> <span class=\"small\">(\(escape(a.type)), \(size(a.size)))</span></li>\n"
            }
            body += "</ul>\n"
        }
        if let replyTo = replyPath { body += replyForm(path: replyTo, csrf: csrf) }
        body += """
            <p class="actions"><a href="\(escape(path))/eml" download>Download the whole message (.eml)</a>\(account ? " · <a href=\"\(escape(base))/messages\">All my messages</a>" : "")</p>
            <form method="post" action="\(escape(base))/logout">
            \(hidden("csrf", csrf))
            <button type="submit" class="secondary">Sign out</button>
            </form>

            """
        return document(base: base, title: "Secure message", body)
    }

    static func signIn(base: String, csrf: String, note: String?) -> String {
        document(base: base, title: "Your secure messages", """
            \(note.map { "<p class=\"note\" id=\"note\">\(escape($0))</p>" } ?? "")
            <form method="post" action="\(escape(base))/account">
            \(hidden("csrf", csrf))
            <label for="address">Your email address</label>
            <input type="email" name="address" id="address" autocomplete="username" required>
            <label for="password">Password</label>
            <input type="password" name="password" id="password" autocomplete="current-password" required>
            <button type="submit">Sign in</button>
            </form>
            <p class="small"><a href="\(escape(base))/account/reset">Forgot your password?</a></p>

            """)
    }

    static func center(base: String, account: String, inbox: [InboxEntry], sent: [MessageStatus]?, written: [InboundRecord]? = nil,
                       csrf: String, now: Date) -> String {
        var body = "<p>Signed in as <strong>\(escape(account))</strong>.</p>\n<h2>Messages for you</h2>\n"
        if inbox.isEmpty { body += "<p class=\"small\">No messages.</p>\n" }
        body += "<ul class=\"messages\">\n"
        for m in inbox {
            let state: String
            switch m.state {
            case .readable: state = m.firstOpen == nil ? "unread" : "read"
            case .needsLink: state = "open it once with the link from its notice"
            case .sealedForEarlierPassword: state = "sealed for your earlier password; cannot be opened"
            case .retracted: state = "withdrawn by the sender"
            case .expired: state = "expired"
            case .locked: state = "locked"
            }
            let who = "From \(escape(m.sender)), \(escape(date(m.created)))"
            let title = m.state == .readable ? "<a href=\"\(escape(base))/read/\(m.id)/\(m.index)\">\(who)</a>" : who
            body += "<li>\(title)<br><span class=\"small\">\(escape(state)); until \(escape(date(m.expires)))</span></li>\n"
        }
        body += "</ul>\n"
        if let sent {
            body += "<h2>Sent by you</h2>\n"
            if sent.isEmpty { body += "<p class=\"small\">No messages.</p>\n" }
            body += "<ul class=\"messages\">\n"
            for m in sent {
                let live = m.retracted == nil && !m.purged && m.expires > now
                let opens = m.recipients.map { r in
                    "\(escape(r.address)): " + (r.firstOpen.map { "opened \(escape(date($0)))" } ?? "not opened")
                }.joined(separator: "; ")
                let title = "To \(escape(m.recipients.map(\.address).joined(separator: ", "))), \(escape(date(m.created)))"
                body += "<li>\(live ? "<a href=\"\(escape(base))/read/\(m.id)/sent\">\(title)</a>" : title)<br>"
                body += "<span class=\"small\">\(m.retracted != nil ? "withdrawn" : live ? "until \(escape(date(m.expires)))" : "expired"); \(opens)</span>"
                if live {
                    body += """
                        <form method="post" action="\(escape(base))/messages/\(m.id)/retract" class="inline">
                        \(hidden("csrf", csrf))
                        <button type="submit" class="secondary">Withdraw</button>
                        </form>
                        """
                }
                body += "</li>\n"
            }
            body += "</ul>\n"
        }
        if let written {
            body += "<h2>Written on the form</h2>\n<p class=\"small\"><a href=\"\(escape(base))/send\">Write a secure message</a></p>\n"
            body += "<ul class=\"messages\">\n"
            for m in written {
                let state = m.delivered.map { "delivered \(date($0))" } ?? (m.expires < now ? "never confirmed; destroyed" : "waiting for its link")
                body += "<li>To \(escape(m.recipient)), \(escape(date(m.created)))<br><span class=\"small\">\(escape(state)); \(size(m.size))</span></li>\n"
            }
            body += "</ul>\n"
        }
        body += """
            <form method="post" action="\(escape(base))/logout">
            \(hidden("csrf", csrf))
            <button type="submit" class="secondary">Sign out</button>
            </form>

            """
        return document(base: base, title: "Your secure messages", body)
    }

    static func resetRequest(base: String, csrf: String, available: Bool, note: String? = nil) -> String {
        guard available else {
            return notice(base: base, title: "New password", "This portal cannot mail password links; ask the organisation that sent you the message.")
        }
        return document(base: base, title: "New password", """
            \(note.map { "<p class=\"note\" id=\"note\">\(escape($0))</p>" } ?? "")
            <p>We mail a link to set a new password to your address.
            Messages sealed for your old password cannot be opened with the new one: their senders will have to
            send them again.</p>
            <form method="post" action="\(escape(base))/account/reset">
            \(hidden("csrf", csrf))
            <label for="address">Your email address</label>
            <input type="email" name="address" id="address" autocomplete="username" required>
            <button type="submit">Mail me a link</button>
            </form>

            """)
    }

    /// The page a reset link opens: our script moves the token from the fragment
    /// into the form (it is never in a URL the server sees).
    static func newPassword(base: String, csrf: String, note: String?, token: String = "") -> String {
        document(base: base, title: "New password", script: true, """
            \(note.map { "<p class=\"note\" id=\"note\">\(escape($0))</p>" } ?? "")
            <form method="post" action="\(escape(base))/account/password" data-fragment="token">
            \(hidden("csrf", csrf))
            \(hidden("token", token))
            <label for="password">New password (at least \(PortalState.minimumPasswordLength) characters)</label>
            <input type="password" name="password" id="password" autocomplete="new-password" minlength="\(PortalState.minimumPasswordLength)" required>
            <label for="password2">The same password again</label>
            <input type="password" name="password2" id="password2" autocomplete="new-password" required>
            <button type="submit">Set the password</button>
            </form>

            """)
    }

    static func size(_ n: Int) -> String {
        n < 1024 ? "\(n) bytes" : n < 1024 * 1024 ? "\(n / 1024) KiB" : "\(n / (1024 * 1024)) MiB"
    }

    static func notice(base: String, title: String, _ sentence: String, back: String? = nil) -> String {
        document(base: base, title: title, "<p>\(escape(sentence))</p>\n"
                 + (back.map { "<p><a href=\"\(escape($0))\">Back to the message</a></p>\n" } ?? ""))
    }

    /// The reply form under an opened message (recipients only).
    static func replyForm(path: String, csrf: String) -> String {
        """
        <h2>Reply securely</h2>
        <form method="post" action="\(escape(path))/reply" enctype="multipart/form-data" class="reply">
        \(hidden("csrf", csrf))
        <label for="text">Your reply</label>
        <textarea name="text" id="text" rows="6"></textarea>
        <label for="files">Attachments (optional)</label>
        <input type="file" name="files" id="files" multiple>
        <button type="submit">Send the reply</button>
        </form>

        """
    }

    /// The public SecureSend form. `signedIn`: the account it is sent as (no
    /// address to prove then).
    static func secureSend(base: String, csrf: String, recipients: [String], signedIn: String?, note: String? = nil) -> String {
        let whom = recipients.map { $0.contains("@") && !$0.hasPrefix("@") ? $0 : "anyone at " + $0.trimmingCharacters(in: CharacterSet(charactersIn: "@")) }
        return document(base: base, title: "Send a secure message", """
            \(note.map { "<p class=\"note\" id=\"note\">\(escape($0))</p>" } ?? "")
            <p>Write to \(escape(whom.joined(separator: ", "))) without your message crossing the Internet in the clear.
            \(signedIn == nil ? "We first mail a link to your address: the message is delivered once you follow it." : "")</p>
            <form method="post" action="\(escape(base))/send" enctype="multipart/form-data">
            \(hidden("csrf", csrf))
            \(signedIn.map { "<p>Sending as <strong>\(escape($0))</strong> (signed in).</p>" } ?? """
            <label for="from">Your email address</label>
            <input type="email" name="from" id="from" autocomplete="email" required>
            """)
            <label for="to">To</label>
            <input type="email" name="to" id="to" required>
            <label for="subject">Subject</label>
            <input type="text" name="subject" id="subject" maxlength="200" required>
            <label for="text">Message</label>
            <textarea name="text" id="text" rows="8"></textarea>
            <label for="files">Attachments (optional)</label>
            <input type="file" name="files" id="files" multiple>
            <button type="submit">Send securely</button>
            </form>

            """)
    }

    /// The page a SecureSend link opens: our script takes the token from the
    /// fragment and posts it.
    static func secureSendVerify(base: String, csrf: String) -> String {
        document(base: base, title: "Deliver your message", script: true, """
            <form method="post" action="\(escape(base))/send/verify" data-fragment="token" data-submit="yes" id="pickup">
            \(hidden("csrf", csrf))
            \(hidden("token", ""))
            <p id="opening" hidden>Delivering your message…</p>
            <noscript><p>This page needs JavaScript to read the link; or paste the link's last part here:</p>
            <input type="text" name="token" aria-label="Code from the link"><button type="submit">Deliver</button></noscript>
            </form>
            <div id="paste" hidden><p class="note">This link is incomplete: open it from your mail again.</p></div>

            """)
    }

    // MARK: static files

    /// Moves the link secret from the fragment (never sent to us) into the form, posts
    /// it, and drops it from the address bar and history.
    static let pickupScript = """
        "use strict";
        document.addEventListener("DOMContentLoaded", function () {
          var form = document.querySelector("form[data-fragment]");
          if (!form) { return; }
          var value = window.location.hash.replace(/^#/, "");
          history.replaceState(null, "", window.location.pathname + window.location.search);
          var paste = document.getElementById("paste");
          if (value === "") {
            if (paste) { paste.hidden = false; }
            return;
          }
          form.querySelector("input[name=" + form.getAttribute("data-fragment") + "]").value = value;
          if (form.getAttribute("data-submit") === "yes") {
            document.getElementById("opening").hidden = false;
            form.submit();
          }
        });

        """

    static let stylesheet = """
        *, *::before, *::after { box-sizing: border-box; }
        html { -webkit-text-size-adjust: 100%; }
        body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b; background: #f4f4f2; }
        main { max-width: 42rem; margin: 0 auto; padding: 1rem; background: #fff; min-height: 100vh; }
        h1 { font-size: 1.4rem; margin: 0.5rem 0 1rem; }
        h2 { font-size: 1.1rem; }
        label { display: block; font-weight: 600; margin: 1rem 0 0.25rem; }
        input[type=text], input[type=email], input[type=password], textarea { width: 100%; font-size: 1rem; padding: 0.6rem; border: 1px solid #888; border-radius: 4px; }
        button { margin-top: 0.75rem; width: 100%; font-size: 1rem; padding: 0.7rem; border: 0; border-radius: 4px; background: #1f5fa8; color: #fff; }
        .note { background: #fff4d6; border-left: 4px solid #d9a400; padding: 0.5rem 0.75rem; }
        .small { color: #555; font-size: 0.9rem; }
        dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 0.75rem; }
        dl.fields dt { font-weight: 600; }
        dl.fields dd { margin: 0; overflow-wrap: anywhere; }
        pre.text { white-space: pre-wrap; overflow-wrap: anywhere; font: 0.95rem/1.45 ui-monospace, monospace; background: #f7f7f7; padding: 0.75rem; }
        ul.attachments { padding-left: 1.2rem; overflow-wrap: anywhere; }
        ul.messages { list-style: none; padding: 0; overflow-wrap: anywhere; }
        ul.messages li { border-bottom: 1px solid #ddd; padding: 0.6rem 0; }
        iframe.html { width: 100%; min-height: 24rem; border: 1px solid #ccc; background: #fff; }
        button.secondary { background: #e8e8e8; color: #1b1b1b; }
        form.inline button { width: auto; padding: 0.3rem 0.8rem; margin-top: 0.3rem; }
        .actions { margin-top: 1.5rem; }

        """
}

/// A page rendered once with markers where the per-request values go (an action
/// and a CSRF token), then filled by joining: the hot link page costs a few
/// appends instead of a whole rendering. The values are escaped when filled.
struct PageTemplate: Sendable {
    private static let actionMarker = "\u{1}action\u{1}", csrfMarker = "\u{1}csrf\u{1}"
    private enum Piece: Sendable { case text(String), action, csrf }
    private let pieces: [Piece]

    init(_ render: (_ action: String, _ csrf: String) -> String) {
        var pieces: [Piece] = []
        let page = render(Self.actionMarker, Self.csrfMarker)
        for (i, chunk) in page.components(separatedBy: Self.actionMarker).enumerated() {
            if i > 0 { pieces.append(.action) }
            for (j, text) in chunk.components(separatedBy: Self.csrfMarker).enumerated() {
                if j > 0 { pieces.append(.csrf) }
                pieces.append(.text(text))
            }
        }
        self.pieces = pieces
    }

    func fill(action: String, csrf: String) -> String {
        let action = Pages.escape(action), csrf = Pages.escape(csrf)
        var out = ""
        for piece in pieces {
            switch piece {
            case .text(let t): out += t
            case .action: out += action
            case .csrf: out += csrf
            }
        }
        return out
    }
}
