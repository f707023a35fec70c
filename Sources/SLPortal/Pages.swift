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
            <form method="post" action="\(escape(action))" id="pickup">
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

    static func question(base: String, action: String, csrf: String, secret: String, preview: PickupPreview,
                         question: String, note: String?) -> String {
        document(base: base, title: "Secure message", """
            <p>From <strong>\(escape(preview.sender))</strong> to \(escape(preview.recipient)).
            It can be opened until \(escape(date(preview.expires))).</p>
            \(note.map { "<p class=\"note\" id=\"note\">\(escape($0))</p>" } ?? "")
            <form method="post" action="\(escape(action))">
            \(hidden("csrf", csrf))
            \(hidden("secret", secret))
            <label for="answer">\(escape(question.isEmpty ? "Your answer" : question))</label>
            <input type="text" name="answer" id="answer" autocomplete="off" spellcheck="false" autofocus required>
            <button type="submit">Open the message</button>
            </form>
            <p class="small">The sender chose this question. \(preview.attemptsLeft) attempt\(preview.attemptsLeft == 1 ? "" : "s") left.</p>
            """)
    }

    static func message(base: String, _ view: MessageView) -> String {
        var body = "<dl class=\"fields\">\n"
        for (name, value) in view.fields {
            body += "<dt>\(escape(name))</dt><dd>\(escape(value))</dd>\n"
        }
        body += "</dl>\n"
        for text in view.texts {
            body += "<pre class=\"text\">\(escape(text))</pre>\n"
        }
        if view.texts.isEmpty {
            body += "<p class=\"note\">This message has no plain text part to show.</p>\n"
        }
        if view.htmlParts > 0 {
            body += "<p class=\"note\">This message also has an HTML version, which this portal cannot show yet.</p>\n"
        }
        if !view.attachments.isEmpty {
            body += "<h2>Attachments</h2>\n<ul class=\"attachments\">\n"
            for a in view.attachments {
                body += "<li>\(escape(a.name)) <span class=\"small\">(\(escape(a.type)), \(size(a.size)))</span></li>\n"
            }
            body += "</ul>\n<p class=\"note\">Downloading attachments is not available yet.</p>\n"
        }
        return document(base: base, title: "Secure message", body)
    }

    static func size(_ n: Int) -> String {
        n < 1024 ? "\(n) bytes" : n < 1024 * 1024 ? "\(n / 1024) KiB" : "\(n / (1024 * 1024)) MiB"
    }

    static func notice(base: String, title: String, _ sentence: String) -> String {
        document(base: base, title: title, "<p>\(escape(sentence))</p>\n")
    }

    // MARK: static files

    /// Moves the link secret from the fragment (never sent to us) into the form, posts
    /// it, and drops it from the address bar and history.
    static let pickupScript = """
        "use strict";
        document.addEventListener("DOMContentLoaded", function () {
          var form = document.getElementById("pickup");
          if (!form) { return; }
          var secret = window.location.hash.replace(/^#/, "");
          history.replaceState(null, "", window.location.pathname + window.location.search);
          if (secret === "") {
            document.getElementById("paste").hidden = false;
            return;
          }
          document.getElementById("secret").value = secret;
          document.getElementById("opening").hidden = false;
          form.submit();
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
        input[type=text] { width: 100%; font-size: 1rem; padding: 0.6rem; border: 1px solid #888; border-radius: 4px; }
        button { margin-top: 0.75rem; width: 100%; font-size: 1rem; padding: 0.7rem; border: 0; border-radius: 4px; background: #1f5fa8; color: #fff; }
        .note { background: #fff4d6; border-left: 4px solid #d9a400; padding: 0.5rem 0.75rem; }
        .small { color: #555; font-size: 0.9rem; }
        dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 0.75rem; }
        dl.fields dt { font-weight: 600; }
        dl.fields dd { margin: 0; overflow-wrap: anywhere; }
        pre.text { white-space: pre-wrap; overflow-wrap: anywhere; font: 0.95rem/1.45 ui-monospace, monospace; background: #f7f7f7; padding: 0.75rem; }
        ul.attachments { padding-left: 1.2rem; overflow-wrap: anywhere; }

        """
}
