import Foundation

/// A real Postfix as a clinic runs it for outgoing mail (peers.py gateway; see its
/// README): smtpd on 127.0.0.1:`port`; mail to `domains` alone is delivered by Postfix
/// into `maildir`; a message with any other recipient goes whole, all its recipients
/// included, to the pipe(8) service `sl` that `filterService` defines (as user `sl`).
/// The gateway never delivers elsewhere itself. Its bounces go to the sender: to
/// `maildir` when the sender is in `domains`.
///
/// Stopped by `stop()` or when the test process exits; its directory is removed then.
public final class Gateway: Sendable {
    public let address = "127.0.0.1"
    public let port: UInt16
    public let dir: String
    public let hostname: String
    /// Where Postfix delivers mail for `domains`, bounces to local senders included.
    public var maildir: String { dir + "/Maildir" }
    /// MAIL_CONFIG of the instance (main.cf, master.cf, sl_filter).
    public var configDirectory: String { dir + "/etc" }

    /// - Parameters:
    ///   - domains: the local domains; the first also names the host (`gw.DOMAIN`).
    ///   - filterService: the master.cf lines of the service `sl` (the text, not a
    ///     path), e.g. `sl unix - n n - 10 pipe` and its `flags=q user=sl null_sender=`
    ///     and `argv=... -f ${sender} -- ${recipient}` lines. The argv program and
    ///     every directory above it must be readable and searchable by user `sl`.
    ///   - main: main.cf settings added or overridden, e.g. `["soft_bounce": "yes"]`.
    ///     Deferred mail waits for `flush()` (Postfix's backoff times); for retries
    ///     every few seconds by themselves pass `["minimal_backoff_time": "2s",
    ///     "maximal_backoff_time": "4s", "queue_run_delay": "1s"]`, never less than
    ///     2s backoff (see the README).
    public init(domains: [String], filterService: String, main: [String: String] = [:]) throws {
        guard let first = domains.first else { throw PeerError("Gateway needs at least one local domain") }
        hostname = "gw.\(first)"
        dir = NSTemporaryDirectory() + "/sl-gateway-\(getpid())-\(UUID().uuidString.prefix(8))"
        // Postfix's daemons and the filter (user sl) drop privileges: the path to
        // the instance must be searchable by others.
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        port = try Peers.freePort(type: SOCK_STREAM)
        let service = dir + "/filter-service.cf"
        try filterService.write(toFile: service, atomically: true, encoding: .utf8)
        registerAtExit("rm -rf '\(dir)'")
        registerAtExit("\(Peers.script) gateway stop --dir \(dir)")
        var argv = [Peers.script, "gateway", "start", "--dir", dir, "--address", address, "--port", "\(port)",
                    "--hostname", hostname, "--local-domains", domains.joined(separator: ","),
                    "--filter-service", service]
        var main = main
        // Under make check-sanitizers the filter Postfix starts gets the sanitizer's
        // options too (its report files, suppressions, exit status), which Postfix
        // would otherwise strip from its children's environment.
        let sanitizer = ["TSAN_OPTIONS", "ASAN_OPTIONS", "LSAN_OPTIONS"].filter { ProcessInfo.processInfo.environment[$0] != nil }
        if !sanitizer.isEmpty {
            let names = sanitizer.joined(separator: " ")
            main["import_environment"] = main["import_environment"]
                ?? "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ XAUTHORITY DISPLAY LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME \(names)"
            main["export_environment"] = main["export_environment"] ?? "TZ MAIL_CONFIG LANG \(names)"
        }
        for key in main.keys.sorted() {
            argv += ["--main", "\(key)=\(main[key]!)"]
        }
        try Peers.run(argv)
    }

    /// Sends `message` by SMTP from `from` to `to`; throws with the server's reply
    /// unless every recipient and the message were accepted (250).
    public func submit(from: String, to: [String], message: String) throws {
        try Peers.run([Peers.script, "submit", "--address", address, "--port", "\(port)", "--from", from]
                      + to.flatMap { ["--to", $0] }, stdin: message)
    }

    /// Waits until no message is being received or delivered (maildrop, incoming
    /// and active are empty): every message is delivered, bounced (the bounce
    /// delivered too when it is local) or deferred. Throws after `timeout` seconds.
    public func waitUntilIdle(timeout: Double = 60) throws {
        try Peers.run([Peers.script, "gateway", "wait", "--dir", dir, "--timeout", "\(timeout)"])
    }

    /// The number of messages with deferred recipients (deferred queue and hold),
    /// counted once no delivery attempt is under way.
    public func deferredCount() throws -> Int {
        let out = try Peers.run([Peers.script, "gateway", "queue", "--dir", dir])
        guard let n = Int(out.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw PeerError("gateway queue printed \(out.debugDescription)")
        }
        return n
    }

    /// Retries the deferred mail now (postqueue -f); returns once each deferred
    /// message is being retried, so `waitUntilIdle()` right after waits for the
    /// outcome.
    public func flush() throws {
        try Peers.run([Peers.script, "gateway", "flush", "--dir", dir])
    }

    /// The messages in `maildir` (new and cur) whose text contains `marker`.
    public func delivered(containing marker: String) -> [String] {
        var out: [String] = []
        for sub in ["new", "cur"] {
            let d = maildir + "/" + sub
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []).sorted() {
                if let data = FileManager.default.contents(atPath: d + "/" + name) {
                    let text = String(decoding: data, as: UTF8.self)
                    if text.contains(marker) { out.append(text) }
                }
            }
        }
        return out
    }

    /// The instance's whole log (D/maillog): Postfix's account of every delivery.
    public func log() -> String {
        String(decoding: FileManager.default.contents(atPath: dir + "/maillog") ?? Data(), as: UTF8.self)
    }

    /// Stops Postfix and waits until all its processes are gone; the directory
    /// stays until the test process exits.
    public func stop() {
        _ = try? Peers.run([Peers.script, "gateway", "stop", "--dir", dir])
    }
}
