#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import SLMessage

/// The portal's limits under load, made deterministic: a client over
/// portal_rate_limit gets 429; with every derivation slot held (the store's
/// database locked by another process, so each answer waits inside its slot) one
/// more request gets 503 with Retry-After after the pool's 3 seconds of patience,
/// instead of queueing without end.
extension PortalToolTests {
    @Test func aClientOverTheRateLimitGets429() throws {
        let installation = try Installation("escrow_max_attempts = 20\nportal_rate_limit = 3")
        let parts = try #require(EscrowLinkParts(try installation.seal()))
        let server = try Server(installation)
        defer { if server.process.isRunning { _ = server.stop() } }
        try #require(server.port != 0)
        let jar = installation.dir.appendingPathComponent("jar").path
        let page = server.local(parts.page)
        let csrf = try Self.token(try Self.curl(page, jar: jar).body)
        let wrong = [("csrf", csrf), ("secret", parts.secret), ("answer", "Rex-Wrong-Answer")]
        for i in 1...3 {
            let r = try Self.curl(page, form: wrong, jar: jar)
            #expect(r.status == 403, "attempt \(i): \(r.status)")
        }
        let limited = try Self.curl(page, form: [("csrf", csrf), ("secret", parts.secret), ("answer", Self.answer)], jar: jar)
        #expect(limited.status == 429 && limited.body.contains("Too many attempts"), "\(limited.status)")
        #expect(Int(limited.headers["retry-after"] ?? "") != nil)
        Self.expectSecurityHeaders(limited, "429")
        // Counted before the store: the limited attempt cost no attempt there.
        #expect(try Self.attempts(installation, parts.id).failed == 3)
        // Another client address (X-Forwarded-For from the proxy) is not held up.
        let other = try Self.curl(page, form: [("csrf", csrf), ("secret", parts.secret), ("answer", Self.answer)], jar: jar,
                                  options: ["-H", "X-Forwarded-For: 203.0.113.9"])
        #expect(other.status == 200 && other.body.contains(Self.text), "\(other.status)")
        #expect(server.stop() == 0)
    }

    @Test func everySlotBusyGives503WithRetryAfter() throws {
        let installation = try Installation()
        let slots = ProcessInfo.processInfo.activeProcessorCount
        let links = try (0...slots).map { _ in try #require(EscrowLinkParts(try installation.seal())) }
        let server = try Server(installation)
        defer { if server.process.isRunning { _ = server.stop() } }
        try #require(server.port != 0)
        let jar = installation.dir.appendingPathComponent("jar").path
        let csrf = try Self.token(try Self.curl(server.local(links[0].page), jar: jar).body)

        // Another process holds the database's write lock for 8 seconds: every
        // answer waits for it inside its derivation slot.
        let database = installation.dir.appendingPathComponent("store/escrow.sqlite").path
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        holder.arguments = ["-c", "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None); "
                            + "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(8); c.execute('COMMIT')", database]
        let out = Pipe()
        holder.standardOutput = out
        try holder.run()
        _ = out.fileHandleForReading.availableData      // "locked"

        // One request more than there are slots, all at once: whichever comes last
        // waits the pool's patience and is turned away; the others wait for the
        // lock inside their slots and open their messages once it is gone.
        final class Replies: @unchecked Sendable {
            let lock = NSLock()
            var all: [(status: Int, retryAfter: String?, seconds: Double)] = []
            func add(_ r: (Int, String?, Double)) { lock.withLock { all.append(r) } }
        }
        let group = DispatchGroup()
        let replies = Replies()
        for parts in links {
            let (page, secret) = (server.local(parts.page), parts.secret)
            group.enter()
            DispatchQueue.global().async {
                let start = Date()
                let r = try? Self.curl(page, form: [("csrf", csrf), ("secret", secret), ("answer", Self.answer)], jar: jar)
                replies.add((r?.status ?? 0, r?.headers["retry-after"], Date().timeIntervalSince(start)))
                if let r, r.status == 503 { Self.expectSecurityHeaders(r, "503") }
                group.leave()
            }
        }
        group.wait()
        holder.waitUntilExit()
        let busy = replies.all.filter { $0.status == 503 }
        #expect(busy.count == 1 && replies.all.filter { $0.status == 200 }.count == slots, "\(replies.all)")
        #expect(busy.first?.retryAfter == "5")
        #expect((busy.first?.seconds ?? 0) >= 2.5, "turned away before the pool's patience: \(busy)")
        #expect(server.stop() == 0)
    }
}

extension PortalToolTests {
    /// A client that opens a connection and goes silent half-way through a request
    /// (slowloris) is cut off after the idle limit (15 s), not kept for ever.
    @Test func aSilentClientIsCutOff() throws {
        let installation = try Installation()
        let server = try Server(installation)
        defer { if server.process.isRunning { _ = server.stop() } }
        try #require(server.port != 0)
        let run = try Tools.runCommand(["python3", "-c", """
            import socket, sys, time
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
            s.sendall(b"GET /sl-escrow/static/portal.css HTTP/1.1\\r\\nHost: x\\r\\n")
            start = time.monotonic()
            s.settimeout(40)
            try:
                while s.recv(4096):
                    pass
            except socket.timeout:
                print("still open after 40 s"); sys.exit(1)
            print(f"{time.monotonic() - start:.1f}")
            """, String(server.port)], stdin: [])
        #expect(run.status == 0, "\(run.stdoutText)")
        let seconds = Double(run.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(seconds >= 10 && seconds < 25, "cut off after \(seconds) s")
        #expect(server.stop() == 0)
    }
}
