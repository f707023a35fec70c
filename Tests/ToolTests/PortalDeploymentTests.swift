#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import SLTestPeers

/// The deployment examples, run as their real callers run them: nginx with
/// examples/nginx-sl-portal.conf in front of sl-portal, and systemd's view of
/// examples/sl-portal.service.
extension PortalToolTests {
    /// `text` with each (example's value, test's value) replaced; each must be there.
    static func substitute(_ text: String, _ pairs: [(String, String)], in example: String) -> String {
        var out = text
        for (old, new) in pairs {
            #expect(out.contains(old), "\(example) no longer has \(old)")
            out = out.replacingOccurrences(of: old, with: new)
        }
        return out
    }

    /// A throwaway nginx (Debian's, as root, its own prefix, pid file and logs in a
    /// scratch directory) with the example's server block, only the certificate
    /// paths, the port and the upstream port substituted; curl picks a message up
    /// through it over TLS, trusting only the certificate made here.
    @Test func nginxExampleTerminatesTLSInFrontOfThePortal() throws {
        let installation = try Installation()
        let link = try installation.seal()
        let parts = try #require(EscrowLinkParts(link))
        let server = try Server(installation)
        defer { if server.process.isRunning { _ = server.stop() } }
        try #require(server.port != 0)

        let dir = installation.dir.appendingPathComponent("nginx").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let cert = dir + "/portal.pem", key = dir + "/portal.key"
        let made = try Tools.runCommand(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                                         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=portal.clinic.test",
                                         "-addext", "subjectAltName=DNS:portal.clinic.test"], stdin: [])
        try #require(made.status == 0, "openssl: \(made.stderr)")

        let port = try Peers.freePort(type: SOCK_STREAM)
        let example = Tools.examples.appendingPathComponent("nginx-sl-portal.conf")
        let site = Self.substitute(try String(contentsOf: example, encoding: .utf8), [
            ("listen 443 ssl;", "listen 127.0.0.1:\(port) ssl;"),
            ("/etc/ssl/certs/mail.clinic.example.pem", cert),
            ("/etc/ssl/private/mail.clinic.example.key", key),
            ("proxy_pass http://127.0.0.1:8080;", "proxy_pass http://127.0.0.1:\(server.port);"),
        ], in: "nginx-sl-portal.conf")
        try site.write(toFile: dir + "/site.conf", atomically: true, encoding: .utf8)
        let nginx = try Nginx(dir: dir, http: "    include \(dir)/site.conf;")
        defer { nginx.stop() }

        let tls = ["--cacert", cert, "--resolve", "portal.clinic.test:\(port):127.0.0.1"]
        let page = parts.page.replacingOccurrences(of: "https://portal.clinic.test", with: "https://portal.clinic.test:\(port)")
        let jar = dir + "/jar"
        var first: Reply?
        for _ in 0..<100 {
            let probe = try Tools.runCommand(["curl", "-s", "-o", "/dev/null"] + tls + [page], stdin: [])
            if probe.status == 0 { first = try Self.curl(page, jar: jar, options: tls); break }
            if !nginx.isRunning { break }
            usleep(100_000)
        }
        let linkPage = try #require(first, "nginx did not answer: \(nginx.errorLog)")
        #expect(linkPage.status == 200 && linkPage.body.contains("/sl-escrow/static/pickup.js"))
        #expect(linkPage.headers["strict-transport-security"] == "max-age=31536000")
        Self.expectSecurityHeaders(linkPage, "link page through nginx")
        let csrf = try Self.token(linkPage.body)
        let asked = try Self.curl(page, form: [("csrf", csrf), ("secret", parts.secret)], jar: jar, options: tls)
        #expect(asked.status == 200 && asked.body.contains(Self.question), "\(asked.body)")
        let opened = try Self.curl(page, form: [("csrf", csrf), ("secret", parts.secret), ("answer", Self.answer)], jar: jar, options: tls)
        #expect(opened.status == 200 && opened.body.contains(Self.text), "\(opened.body)")
        Self.expectSecurityHeaders(opened, "message through nginx")
        // client_max_body_size 64k: nginx turns a larger form away itself.
        let big = try Self.curl(page, form: [("csrf", csrf), ("answer", String(repeating: "a", count: 70 * 1024))], jar: jar, options: tls)
        #expect(big.status == 413 && big.body.contains("Request Entity Too Large") && big.headers["content-security-policy"] == nil,
                "not nginx's own 413: \(big.body)")

        nginx.stop()
        // The portal saw the proxied requests on the escrow_url path.
        #expect(server.stop() == 0)
        #expect(server.logText.contains("POST /sl-escrow/\(parts.id)/\(parts.index) 200"), "\(server.logText)")
    }

    /// systemd-analyze verify (systemd 252 runs offline in this container, no
    /// systemd as PID 1 needed) on the example unit with ExecStart's binary
    /// substituted by the installed sl-portal; then ExecStart itself run as the
    /// unit's User= with NoNewPrivileges (setpriv, as systemd would exec it), with
    /// only --config substituted, serving a message from a store that user owns.
    @Test func systemdUnitExampleVerifiesAndRunsAsItsUser() throws {
        let installation = try Installation()
        let link = try installation.seal()
        let parts = try #require(EscrowLinkParts(link))
        let binary = try Installed.bin("sl-portal")
        let example = try String(contentsOf: Tools.examples.appendingPathComponent("sl-portal.service"), encoding: .utf8)
        let unit = Self.substitute(example, [("ExecStart=/usr/local/bin/sl-portal ", "ExecStart=\(binary) ")], in: "sl-portal.service")
        let unitFile = installation.dir.appendingPathComponent("sl-portal.service").path
        try unit.write(toFile: unitFile, atomically: true, encoding: .utf8)
        // --man=no: Documentation= names sl-portal(8), which `make install` puts in place, not the tests.
        let verified = try Tools.runCommand(["systemd-analyze", "verify", "--man=no", unitFile], stdin: [])
        #expect(verified.status == 0 && verified.stderr.isEmpty, "systemd-analyze verify: \(verified.stderr)")

        func value(_ key: String) -> String? {
            unit.split(separator: "\n").first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
        #expect(value("NoNewPrivileges") == "yes" && value("ProtectSystem") == "strict" && value("PrivateTmp") == "yes")
        #expect(value("ProtectHome") == "yes" && value("Restart") == "on-failure" && value("ReadWritePaths") == "/var/lib/sl")
        let user = try #require(value("User"))
        #expect(user == MailUser.name)
        let exec = try #require(value("ExecStart")).split(separator: " ").map(String.init)
        #expect(exec == [binary, "--config", "/etc/sl/sl.conf"])

        try MailUser.own(installation.dir.path)
        let command = ["/usr/bin/setpriv", "--reuid=\(user)", "--regid=\(user)", "--init-groups", "--no-new-privs",
                       "/usr/bin/env", "-i", "PATH=/usr/bin:/bin"] + Array(exec.prefix(2)) + [installation.config]
        let server = try Server(installation, command: command)
        defer { if server.process.isRunning { _ = server.stop() } }
        try #require(server.port != 0)
        let jar = installation.dir.appendingPathComponent("jar").path
        let page = server.local(parts.page)
        let csrf = try Self.token(try Self.curl(page, jar: jar).body)
        let opened = try Self.curl(page, form: [("csrf", csrf), ("secret", parts.secret), ("answer", Self.answer)], jar: jar)
        #expect(opened.status == 200 && opened.body.contains(Self.text), "\(opened.body)\n\(server.logText)")
        #expect(server.stop() == 0)
        #expect(server.logText.contains("stopped"))
    }
}
