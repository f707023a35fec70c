#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import SLMessage

/// sl-portal as built, on a free port, over a store the real tools filled
/// (sl-classify | sl-escrow-pack): plain HTTP behind a (pretend) proxy with curl for
/// every status and header, then a real headless Chromium (Selenium) picks a message
/// up the way a recipient does, from the link with its #fragment; HTTPS with a
/// throwaway CA; and the configurations it refuses to start with.
@Suite(.serialized) struct PortalToolTests {
    static let question = "Name of your first pet?"
    static let answer = "Fluffy the cat"
    static let text = "Portal-Body-Marker-6151: the results are fine."

    struct Installation {
        let dir: URL
        var config: String { dir.appendingPathComponent("sl.conf").path }

        /// `extra`: more sl.conf lines (escrow_expiry, escrow_max_attempts); `portal`
        /// the portal_* lines (default: plain HTTP on loopback behind a proxy).
        init(_ extra: String = "", portal: String = "portal_listen = 127.0.0.1:0\nportal_behind_proxy = yes\n",
             store: String = "store") throws {
            dir = try Tools.scratch()
            try """
            BEGIN:VCARD
            VERSION:4.0
            FN:Carol
            EMAIL:carol@example.org
            X-SL-ESCROW-QUESTION:\(PortalToolTests.question)
            X-SL-ESCROW-ANSWER:\(PortalToolTests.answer)
            END:VCARD

            """.write(toFile: dir.appendingPathComponent("book.vcf").path, atomically: true, encoding: .utf8)
            try """
            hostname = mx.clinic.test
            state_directory = state
            escrow_store = \(store)
            escrow_url = https://portal.clinic.test/sl-escrow
            escrow_kdf_passes = 2
            escrow_kdf_memory = 19
            tls_probe = no
            book main = book.vcf
            default_book = main
            \(portal)
            \(extra)

            """.write(toFile: config, atomically: true, encoding: .utf8)
        }

        /// sl-classify | sl-escrow-pack; the link in the recipient's notice (carol's
        /// question, or a login for a recipient with an escrow account).
        func seal(to recipient: String = "carol@example.org") throws -> String {
            try seal(to: recipient, raw: """

            \(PortalToolTests.text)
            <script>alert(1)</script>

            """)
        }

        /// A message from `from` with `messageID`, as sl-classify | sl-escrow-pack
        /// seal it for carol.
        func seal(from: String, messageID: String) throws -> String {
            try seal(raw: "\n\(PortalToolTests.text)\n", from: from, messageID: messageID)
        }

        /// `raw`: the header fields after the addresses (MIME), a blank line, the body.
        func seal(to recipient: String = "carol@example.org", raw: String, from: String = "Alice <alice@clinic.test>",
                  messageID: String = "<portal-\(UUID().uuidString)@clinic.test>") throws -> String {
            let message = bytes("""
            From: \(from)
            To: \(recipient)
            Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from the lab
            Date: Mon, 30 Nov 2026 09:00:00 +0000
            Message-ID: \(messageID)
            \(raw)
            """)
            let sender = (try? AddressList.parse(from).first?.addrSpec) ?? "alice@clinic.test"
            let routed = try Tools.run("sl-classify", ["--config", config, "--no-ask", "-f", sender, recipient], stdin: message)
            #expect(routed.status == 0, "\(routed.stderr)")
            #expect(routed.stdoutText.contains("X-SL-Method: escrow"), "\(routed.stdoutText)")
            let packed = try Tools.run("sl-escrow-pack", ["--config", config], stdin: routed.stdout)
            #expect(packed.status == 0, "\(packed.stderr)")
            let link = try Regex(#"https://portal\.clinic\.test/sl-escrow/[0-9a-f]{32}/[0-9]+#[A-Za-z0-9_-]+"#)
            let match = try #require(packed.stdoutText.firstMatch(of: link))
            return String(packed.stdoutText[match.range])
        }
    }

    /// The running portal, its stderr in a file.
    final class Server {
        let process = Process()
        let log: URL
        var port = 0

        let scheme: String

        /// `command`: how to start it (default: the built binary with the installation's sl.conf).
        init(_ installation: Installation, command: [String]? = nil, scheme: String = "http") throws {
            self.scheme = scheme
            log = installation.dir.appendingPathComponent("portal.log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let argv = command ?? [Tools.binDirectory.appendingPathComponent("sl-portal").path, "--config", installation.config]
            process.executableURL = URL(fileURLWithPath: argv[0])
            process.arguments = Array(argv.dropFirst())
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: log)
            try process.run()
            let listening = try Regex(#"listening on [0-9.:\[\]]+:([0-9]+) "#)
            for _ in 0..<200 where port == 0 {
                if let m = logText.firstMatch(of: listening), let p = Int(logText[m.output[1].range!]) { port = p; break }
                if !process.isRunning { break }
                usleep(50_000)
            }
            #expect(port != 0, "sl-portal did not start: \(logText)")
        }

        var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

        /// SIGTERM, and how it ended.
        func stop() -> Int32 {
            process.terminate()
            process.waitUntilExit()
            return process.terminationStatus
        }

        func local(_ link: String) -> String {
            link.replacingOccurrences(of: "https://portal.clinic.test", with: "\(scheme)://127.0.0.1:\(port)")
        }
    }

    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    /// curl, with a cookie jar; `form` is sent as application/x-www-form-urlencoded;
    /// `options` go before the URL (--cacert, --resolve, -H).
    static func curl(_ url: String, form: [(String, String)]? = nil, jar: String? = nil, options: [String] = []) throws -> Reply {
        // -L: after a right answer the portal answers 303 to the message page (GET).
        var argv = ["curl", "-s", "-i", "-L", "--max-time", "20"] + options
        if let jar { argv += ["-b", jar, "-c", jar] }
        for (k, v) in form ?? [] { argv += ["--data-urlencode", "\(k)=\(v)"] }
        argv.append(url)
        let run = try Tools.runCommand(argv, stdin: [])
        #expect(run.status == 0, "curl: \(run.stderr)")
        var text = run.stdoutText
        var split = try #require(text.range(of: "\r\n\r\n"))
        // Redirects followed: the last response's header block is the one.
        while text[split.upperBound...].hasPrefix("HTTP/"), text.hasPrefix("HTTP/1.1 30") {
            text = String(text[split.upperBound...])
            split = try #require(text.range(of: "\r\n\r\n"))
        }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ")[1]) ?? 0
        var headers: [String: String] = [:]
        for l in lines.dropFirst() {
            guard let colon = l.firstIndex(of: ":") else { continue }
            headers[l[..<colon].lowercased()] = l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Reply(status: status, headers: headers, body: String(text[split.upperBound...]))
    }

    static func expectSecurityHeaders(_ r: Reply, _ what: String) {
        let csp = r.headers["content-security-policy"] ?? ""
        #expect(csp.hasPrefix("default-src 'none'; script-src 'self'; style-src 'self';") && !csp.contains("unsafe")
                && csp.contains("frame-ancestors 'none'") && csp.contains("base-uri 'none'"), "\(what): \(csp)")
        #expect(r.headers["x-content-type-options"] == "nosniff", "\(what)")
        #expect(r.headers["referrer-policy"] == "no-referrer", "\(what)")
        #expect(r.headers["cache-control"] == "no-store", "\(what)")
    }

    static func token(_ body: String) throws -> String {
        let m = try #require(body.firstMatch(of: try Regex(#"name="csrf" value="([A-Za-z0-9_-]{43})""#)))
        return String(body[m.output[1].range!])
    }

    @Test func picksUpOverHTTPAndInAHeadlessBrowser() throws {
        let installation = try Installation()
        let link = try installation.seal()
        let retracted = try installation.seal()
        let browserLink = try installation.seal()
        let server = try Server(installation)
        defer { if server.process.isRunning { _ = server.stop() } }
        try #require(server.port != 0)

        let parsed = try #require(EscrowLinkParts(link))
        let page = server.local(parsed.page)
        let jar = installation.dir.appendingPathComponent("jar").path
        var replies: [(String, Reply)] = []
        func record(_ what: String, _ r: Reply) -> Reply { replies.append((what, r)); return r }

        // The link page: our script and stylesheet, a CSRF cookie and field.
        let first = record("link page", try Self.curl(page, jar: jar))
        #expect(first.status == 200)
        #expect(first.body.contains("/sl-escrow/static/pickup.js") && !first.body.contains("<script>"))
        #expect(first.body.contains("<noscript>"))
        let setCookie = try #require(first.headers["set-cookie"])
        #expect(setCookie.hasPrefix("sl_csrf=") && setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict"))
        #expect(setCookie.contains("; Secure"), "behind a proxy the browser speaks HTTPS: \(setCookie)")
        #expect(first.headers["strict-transport-security"] == nil, "HSTS is the proxy's to send")
        let csrf = try Self.token(first.body)
        #expect(record("script", try Self.curl(server.local("https://portal.clinic.test/sl-escrow/static/pickup.js"))).status == 200)
        #expect(record("stylesheet", try Self.curl(server.local("https://portal.clinic.test/sl-escrow/static/portal.css"))).status == 200)
        #expect(record("no route", try Self.curl(server.local("https://portal.clinic.test/elsewhere"))).status == 404)

        // No CSRF token, or another one: 403 before the store is asked anything.
        #expect(record("no token", try Self.curl(page, form: [("secret", parsed.secret)], jar: jar)).status == 403)
        #expect(record("wrong token", try Self.curl(page, form: [("csrf", String(repeating: "A", count: 43)), ("secret", parsed.secret)], jar: jar)).status == 403)
        #expect(record("no cookie", try Self.curl(page, form: [("csrf", csrf), ("secret", parsed.secret)])).status == 403)

        // An unknown message and a wrong secret look the same.
        let unknown = record("unknown id", try Self.curl(page.replacingOccurrences(of: parsed.id, with: String(repeating: "0", count: 32)),
                                                         form: [("csrf", csrf), ("secret", parsed.secret)], jar: jar))
        let wrongSecret = record("wrong secret", try Self.curl(page, form: [("csrf", csrf), ("secret", String(parsed.secret.reversed()))], jar: jar))
        #expect(unknown.status == 404 && wrongSecret.status == 404)
        #expect(unknown.body == wrongSecret.body)

        // The question, a wrong answer (403, attempts left), the right one.
        let asked = record("question", try Self.curl(page, form: [("csrf", csrf), ("secret", parsed.secret)], jar: jar))
        #expect(asked.status == 200 && asked.body.contains(Self.question) && asked.body.contains("alice@clinic.test"))
        let wrong = record("wrong answer", try Self.curl(page, form: [("csrf", csrf), ("secret", parsed.secret), ("answer", "Rex-Wrong-Answer")], jar: jar))
        #expect(wrong.status == 403 && wrong.body.contains("4 attempts left"), "\(wrong.body)")
        let opened = record("right answer", try Self.curl(page, form: [("csrf", csrf), ("secret", parsed.secret), ("answer", "  fluffy THE cat ")], jar: jar))
        #expect(opened.status == 200)
        #expect(opened.body.contains(Self.text) && opened.body.contains("Grüße from the lab"))
        #expect(opened.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !opened.body.contains("<script>alert"))

        // Retracted: 410.
        let r = try #require(EscrowLinkParts(retracted))
        let retract = try Tools.run("sl-escrow", ["retract", r.id, "--config", installation.config], stdin: [])
        #expect(retract.status == 0, "\(retract.stderr)")
        let gone = record("retracted", try Self.curl(server.local(r.page), form: [("csrf", csrf), ("secret", r.secret)], jar: jar))
        #expect(gone.status == 410 && gone.body.contains("withdrawn"))

        for (what, reply) in replies { Self.expectSecurityHeaders(reply, what) }

        // From loopback (the proxy), the last X-Forwarded-For entry is the client.
        let forwarded = try Self.curl(server.local("https://portal.clinic.test/sl-escrow/static/portal.css"),
                                      options: ["-H", "X-Forwarded-For: 198.51.100.77, 203.0.113.45"])
        #expect(forwarded.status == 200)

        // A real browser, phone-width: link with fragment, question, answer, message.
        let b = try #require(EscrowLinkParts(browserLink))
        let screenshot = Tools.outputDirectory.appendingPathComponent("portal-screenshots/portal-pickup.png").path
        try FileManager.default.createDirectory(atPath: (screenshot as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let script = Tools.repository.appendingPathComponent("Tests/ToolTests/Portal/pickup.py").path
        let browser = try Tools.runCommand(["python3", script, server.local(browserLink), Self.question, Self.answer, Self.text, screenshot], stdin: [])
        #expect(browser.status == 0, "pickup.py failed:\n\(browser.stdoutText)\n\(browser.stderr)")
        #expect(FileManager.default.fileExists(atPath: screenshot))
        print("portal screenshot: \(screenshot)")

        // SIGTERM stops it cleanly; the log has a line per request and no secret.
        #expect(server.stop() == 0)
        let log = server.logText
        #expect(log.contains("POST /sl-escrow/\(parsed.id)/\(parsed.index) 403"))
        #expect(log.contains("GET /sl-escrow/\(b.id)/\(b.index) 200"))
        #expect(log.contains("stopped"))
        #expect(log.contains("203.0.113.45 GET /sl-escrow/static/portal.css 200"), "\(log)")
        #expect(!log.contains("198.51.100.77"), "only the last X-Forwarded-For entry is the client")
        #expect(log.contains("127.0.0.1 GET /sl-escrow/\(b.id)/\(b.index) 200"), "without the header the peer is the client")
        for secret in [parsed.secret, r.secret, b.secret, "Rex-Wrong-Answer", "fluffy", "Fluffy", csrf] {
            #expect(!log.contains(secret), "the request log holds a secret")
        }
    }
}

extension PortalToolTests {
    /// A throwaway CA and a server certificate for 127.0.0.1 and localhost (P-256),
    /// made with the openssl command; and a second key, for mismatches.
    struct Certificates {
        let dir: URL
        var ca: String { dir.appendingPathComponent("ca.pem").path }
        /// The server certificate followed by the CA: a chain, as the file may hold.
        var chain: String { dir.appendingPathComponent("chain.pem").path }
        var key: String { dir.appendingPathComponent("server.key").path }
        var otherKey: String { dir.appendingPathComponent("other.key").path }

        init(in parent: URL) throws {
            dir = parent.appendingPathComponent("tls")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            func file(_ name: String) -> String { dir.appendingPathComponent(name).path }
            try "subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth\n"
                .write(toFile: file("ext.cnf"), atomically: true, encoding: .utf8)
            let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
            for argv in [
                ["openssl", "req", "-x509"] + ec + ["-keyout", file("ca.key"), "-out", file("ca.pem"), "-days", "2",
                 "-subj", "/CN=sl portal test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign"],
                ["openssl", "req"] + ec + ["-keyout", file("server.key"), "-out", file("server.csr"), "-subj", "/CN=localhost"],
                ["openssl", "x509", "-req", "-in", file("server.csr"), "-CA", file("ca.pem"), "-CAkey", file("ca.key"),
                 "-CAcreateserial", "-days", "2", "-extfile", file("ext.cnf"), "-out", file("server.pem")],
                ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file("other.key")],
            ] {
                let r = try Tools.runCommand(argv, stdin: [])
                guard r.status == 0 else { throw UsageFailure("\(argv.prefix(3).joined(separator: " ")): \(r.stderr)") }
            }
            try (String(contentsOfFile: file("server.pem"), encoding: .utf8) + String(contentsOfFile: file("ca.pem"), encoding: .utf8))
                .write(toFile: chain, atomically: true, encoding: .utf8)
        }
    }

    /// HTTPS on a non-loopback address with the certificate chain: the pickup page
    /// over TLS 1.2 or later with HSTS and a Secure cookie, the question over TLS;
    /// TLS 1.1 is refused; X-Forwarded-For is not believed when not behind a proxy.
    @Test func servesHTTPSWithItsOwnCertificate() throws {
        let scratch = try Tools.scratch()
        let certificates = try Certificates(in: scratch)
        let installation = try Installation(portal: """
            portal_listen = 0.0.0.0:0
            portal_tls_certificate = \(certificates.chain)
            portal_tls_key = \(certificates.key)

            """)
        let link = try installation.seal()
        let server = try Server(installation, scheme: "https")
        defer { if server.process.isRunning { _ = server.stop() } }
        try #require(server.port != 0)
        #expect(server.logText.contains("listening on 0.0.0.0:\(server.port) (HTTPS"), "\(server.logText)")

        let parsed = try #require(EscrowLinkParts(link))
        let page = server.local(parsed.page)
        #expect(page.hasPrefix("https://127.0.0.1:"))
        let jar = installation.dir.appendingPathComponent("jar").path
        let cacert = ["--cacert", certificates.ca]

        // -v: curl names the protocol version it negotiated on stderr.
        let verbose = try Tools.runCommand(["curl", "-s", "-v", "-o", "/dev/null", "--max-time", "20"] + cacert + [page], stdin: [])
        #expect(verbose.status == 0, "\(verbose.stderr)")
        #expect(verbose.stderr.contains("SSL connection using TLSv1.3") || verbose.stderr.contains("SSL connection using TLSv1.2"),
                "\(verbose.stderr)")

        let first = try Self.curl(page, jar: jar, options: cacert + ["-H", "X-Forwarded-For: 203.0.113.45"])
        #expect(first.status == 200 && first.body.contains("name=\"csrf\""))
        #expect(first.headers["strict-transport-security"] == "max-age=31536000")
        Self.expectSecurityHeaders(first, "link page over TLS")
        let setCookie = try #require(first.headers["set-cookie"])
        #expect(setCookie.contains("; Secure") && setCookie.contains("HttpOnly"), "\(setCookie)")
        let missing = try Self.curl(server.local("https://portal.clinic.test/elsewhere"), options: cacert)
        #expect(missing.status == 404 && missing.headers["strict-transport-security"] == "max-age=31536000")
        let asked = try Self.curl(page, form: [("csrf", try Self.token(first.body)), ("secret", parsed.secret)], jar: jar, options: cacert)
        #expect(asked.status == 200 && asked.body.contains(Self.question), "\(asked.status)")

        // A client that speaks TLS 1.1 at most (and would accept it: SECLEVEL=0) gets nowhere.
        let old = try Tools.runCommand(["curl", "-s", "-o", "/dev/null", "--max-time", "20", "--tlsv1.1", "--tls-max", "1.1",
                                        "--ciphers", "DEFAULT@SECLEVEL=0"] + cacert + [page], stdin: [])
        #expect(old.status != 0, "TLS 1.1 was accepted")
        // Nor does one that does not trust the CA.
        let untrusted = try Tools.runCommand(["curl", "-s", "-o", "/dev/null", "--max-time", "20", page], stdin: [])
        #expect(untrusted.status != 0)

        #expect(server.stop() == 0)
        let log = server.logText
        #expect(log.contains("127.0.0.1 GET /sl-escrow/\(parsed.id)/\(parsed.index) 200"), "\(log)")
        #expect(!log.contains("203.0.113.45"), "X-Forwarded-For believed without portal_behind_proxy")
        #expect(!log.contains(parsed.secret))
    }

    /// Each refused configuration: exit 78 and one line naming what to set or the file.
    @Test(arguments: ["no TLS, no proxy", "proxy on 0.0.0.0", "certificate only", "key only", "mismatched key",
                      "missing key file", "unparsable certificate"])
    func refusesToStart(_ what: String) throws {
        let scratch = try Tools.scratch()
        let c = try Certificates(in: scratch)
        let missing = scratch.appendingPathComponent("no-such.key").path
        let garbage = scratch.appendingPathComponent("garbage.pem").path
        try "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
            .write(toFile: garbage, atomically: true, encoding: .utf8)
        let cases: [String: (String, String)] = [
            "no TLS, no proxy": ("portal_listen = 127.0.0.1:0\n",
                                 "set portal_tls_certificate and portal_tls_key to serve HTTPS, or portal_behind_proxy = yes"),
            "proxy on 0.0.0.0": ("portal_listen = 0.0.0.0:0\nportal_behind_proxy = yes\n",
                                 "portal_listen: 0.0.0.0 is not a loopback address"),
            "certificate only": ("portal_tls_certificate = \(c.chain)\n",
                                 "portal_tls_certificate = \(c.chain) is set without portal_tls_key"),
            "key only": ("portal_behind_proxy = yes\nportal_tls_key = \(c.key)\n",
                         "portal_tls_key = \(c.key) is set without portal_tls_certificate"),
            "mismatched key": ("portal_tls_certificate = \(c.chain)\nportal_tls_key = \(c.otherKey)\n",
                               "portal_tls_key: \(c.otherKey) does not match the certificate in \(c.chain)"),
            "missing key file": ("portal_tls_certificate = \(c.chain)\nportal_tls_key = \(missing)\n",
                                 "portal_tls_key: \(missing) cannot be read"),
            "unparsable certificate": ("portal_tls_certificate = \(garbage)\nportal_tls_key = \(c.key)\n",
                                       "portal_tls_certificate: \(garbage) holds no PEM certificate"),
        ]
        let (lines, words) = try #require(cases[what])
        let installation = try Installation(portal: lines)
        // timeout: a portal that starts instead would hold the test forever.
        let run = try Tools.run("sl-portal", ["--config", installation.config], stdin: [], wrapper: ["timeout", "20"])
        #expect(run.status == 78, "\(what): exit \(run.status): \(run.stderr)")
        let said = run.stderr.split(separator: "\n")
        #expect(said.count == 1 && run.stderr.contains(words), "\(what): \(run.stderr)")
    }
}

/// A notice link's pieces: page URL (no fragment), id, recipient number, secret.
struct EscrowLinkParts {
    let page: String, id: String, index: Int, secret: String
    init?(_ link: String) {
        guard let hash = link.firstIndex(of: "#") else { return nil }
        page = String(link[..<hash])
        secret = String(link[link.index(after: hash)...])
        let parts = page.split(separator: "/")
        guard parts.count >= 2, let n = Int(parts[parts.count - 1]) else { return nil }
        id = String(parts[parts.count - 2]); index = n
    }
}

/// The states the store refuses, and what the portal refuses before asking it.
extension PortalToolTests {
    /// carol's (the first recipient's) failed attempts and lock, from `sl-escrow status --json`.
    static func attempts(_ installation: Installation, _ id: String) throws -> (failed: Int, locked: Bool) {
        let status = try Tools.run("sl-escrow", ["status", "--json", id, "--config", installation.config], stdin: [])
        #expect(status.status == 0, "\(status.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout)) as? [String: Any])
        let recipient = try #require((json["recipients"] as? [[String: Any]])?.first)
        return (try #require(recipient["failedAttempts"] as? Int), try #require(recipient["locked"] as? Bool))
    }

    @Test func refusesLockedLoginOversizedAndForgedForms() throws {
        let installation = try Installation("escrow_max_attempts = 2")
        let locked = try #require(EscrowLinkParts(try installation.seal()))
        let forged = try #require(EscrowLinkParts(try installation.seal()))
        let pastedLink = try installation.seal()
        let pasted = try #require(EscrowLinkParts(pastedLink))
        let password = installation.dir.appendingPathComponent("pw").path
        try "erin's long password\n".write(toFile: password, atomically: true, encoding: .utf8)
        let add = try Tools.run("sl-escrow", ["account", "add", "--password-file", password, "erin@example.com", "--config", installation.config], stdin: [])
        #expect(add.status == 0, "\(add.stderr)")
        let login = try #require(EscrowLinkParts(try installation.seal(to: "erin@example.com")))
        let server = try Server(installation)
        defer { if server.process.isRunning { _ = server.stop() } }
        try #require(server.port != 0)
        let jar = installation.dir.appendingPathComponent("jar").path
        let csrf = try Self.token(try Self.curl(server.local(locked.page), jar: jar).body)
        var replies: [(String, Reply)] = []
        func record(_ what: String, _ r: Reply) -> Reply { replies.append((what, r)); return r }

        // Without JavaScript: the whole link pasted (link=, no secret=) gives the
        // question page, which carries the secret on; another message's link does not.
        let page = record("pasted link", try Self.curl(server.local(pasted.page), form: [("csrf", csrf), ("link", "  \(pastedLink) ")], jar: jar))
        #expect(page.status == 200 && page.body.contains(Self.question) && page.body.contains("2 attempts left"), "\(page.body)")
        #expect(page.body.contains("name=\"secret\" value=\"\(pasted.secret)\""))
        let elsewhere = record("another message's link", try Self.curl(server.local(forged.page), form: [("csrf", csrf), ("link", pastedLink)], jar: jar))
        #expect(elsewhere.status == 404)

        // A wrong answer with a forged CSRF token: 403 before the store is asked, no attempt counted.
        let forgedToken = String(repeating: "B", count: 43)
        let refused = record("wrong answer, forged token", try Self.curl(server.local(forged.page),
            form: [("csrf", forgedToken), ("secret", forged.secret), ("answer", "Rex-Wrong-Answer")], jar: jar))
        #expect(refused.status == 403 && refused.body.contains("Please start again") && !refused.body.contains("attempt"), "\(refused.body)")
        #expect(try Self.attempts(installation, forged.id) == (0, false))
        let still = record("question after forged form", try Self.curl(server.local(forged.page), form: [("csrf", csrf), ("secret", forged.secret)], jar: jar))
        #expect(still.status == 200 && still.body.contains("2 attempts left"), "\(still.body)")

        // escrow_max_attempts (2) wrong answers lock carol out: 423, and the right answer is refused too.
        let wrong = [("csrf", csrf), ("secret", locked.secret), ("answer", "Rex-Wrong-Answer")]
        let first = record("first wrong answer", try Self.curl(server.local(locked.page), form: wrong, jar: jar))
        #expect(first.status == 403 && first.body.contains("1 attempt left"), "\(first.body)")
        // Counted in the store where the other tools see it while the portal runs.
        let afterFirst = try Self.attempts(installation, locked.id)
        #expect(afterFirst == (1, false), "\(afterFirst)")
        let last = record("last wrong answer", try Self.curl(server.local(locked.page), form: wrong, jar: jar))
        #expect(last.status == 423 && last.body.contains("locked after too many wrong answers"), "\(last.status) \(last.body)")
        let right = record("right answer when locked", try Self.curl(server.local(locked.page),
            form: [("csrf", csrf), ("secret", locked.secret), ("answer", Self.answer)], jar: jar))
        #expect(right.status == 423 && right.body.contains("Locked") && !right.body.contains(Self.text), "\(right.body)")
        let asked = record("question when locked", try Self.curl(server.local(locked.page), form: [("csrf", csrf), ("secret", locked.secret)], jar: jar))
        #expect(asked.status == 423)
        let lockedState = try Self.attempts(installation, locked.id)
        #expect(lockedState == (2, true), "\(lockedState)")

        // A login-mode recipient (erin has an escrow account): the password page; an
        // answer typed instead neither opens nor counts; the password opens.
        let asksPassword = record("login link", try Self.curl(server.local(login.page), form: [("csrf", csrf), ("secret", login.secret)], jar: jar))
        #expect(asksPassword.status == 200 && asksPassword.body.contains("type=\"password\" name=\"password\""), "\(asksPassword.body)")
        let typed = record("login link with an answer", try Self.curl(server.local(login.page),
            form: [("csrf", csrf), ("secret", login.secret), ("answer", "erin's long password")], jar: jar))
        #expect(typed.status == 403, "\(typed.status) \(typed.body)")
        #expect(!typed.body.contains(Self.text))
        #expect(try Self.attempts(installation, login.id) == (0, false))
        let byPassword = record("login link with the password", try Self.curl(server.local(login.page),
            form: [("csrf", csrf), ("secret", login.secret), ("password", "erin's long password")], jar: jar))
        #expect(byPassword.status == 200 && byPassword.body.contains(Self.text), "\(byPassword.status) \(byPassword.body)")

        // A form over 64 KiB: 413.
        let big = record("65 KiB form", try Self.curl(server.local(forged.page),
            form: [("csrf", csrf), ("secret", forged.secret), ("answer", String(repeating: "a", count: 65 * 1024))], jar: jar))
        #expect(big.status == 413 && big.body.contains("Too large"), "\(big.status)")
        #expect(try Self.attempts(installation, forged.id) == (0, false))

        for (what, reply) in replies { Self.expectSecurityHeaders(reply, what) }
        #expect(server.stop() == 0)
        #expect(!server.logText.contains(locked.secret) && !server.logText.contains("Rex-Wrong-Answer"))
    }

    /// escrow_expiry of 1.7 seconds: once past, 410 with the expiry page.
    @Test func anExpiredMessageIsGone() throws {
        let installation = try Installation("escrow_expiry = 0.00002")
        let expired = try #require(EscrowLinkParts(try installation.seal()))
        let server = try Server(installation)
        defer { if server.process.isRunning { _ = server.stop() } }
        try #require(server.port != 0)
        sleep(2)
        let jar = installation.dir.appendingPathComponent("jar").path
        let first = try Self.curl(server.local(expired.page), jar: jar)
        #expect(first.status == 200)
        let csrf = try Self.token(first.body)
        for form in [[("csrf", csrf), ("secret", expired.secret)], [("csrf", csrf), ("secret", expired.secret), ("answer", Self.answer)]] {
            let gone = try Self.curl(server.local(expired.page), form: form, jar: jar)
            #expect(gone.status == 410, "\(gone.status) \(gone.body)")
            #expect(gone.body.contains("<title>Expired</title>") && gone.body.contains("can no longer be opened") && !gone.body.contains(Self.text), "\(gone.body)")
            Self.expectSecurityHeaders(gone, "expired")
        }
        #expect(server.stop() == 0)
    }
}
