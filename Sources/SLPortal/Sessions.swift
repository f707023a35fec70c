import Foundation
import Hummingbird
import SLEscrow

/// Portal sessions: after a right answer, password or sign-in, the visitor reads
/// parts and attachments (or, with an account, every message for it) without
/// another Argon2id derivation.
///
/// The cookie holds a session id and a key; the server keeps, under the id, only
/// the grant sealed under that key (SessionGrant.sealed), so neither a copy of the
/// server's memory nor a stolen id alone opens anything. Sessions end after a fixed
/// lifetime from their start, on sign-out, and when the portal stops (they live in
/// memory only). At most `capacity` live at once; the oldest give way.
final class SessionTable: @unchecked Sendable {
    static let cookie = "sl_session"
    let lifetime: TimeInterval
    let capacity: Int

    private struct Entry {
        var box: SealedGrant
        var expires: Date
    }
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]

    init(lifetime: TimeInterval, capacity: Int = 20_000) {
        self.lifetime = lifetime
        self.capacity = capacity
    }

    /// A new session for `grant`; the Set-Cookie value that carries it.
    func start(_ grant: SessionGrant, base: String, now: Date) -> String {
        let (key, box) = grant.sealed()
        let id = Tokens.new(bytes: 16)
        lock.withLock {
            sweep(now)
            if entries.count >= capacity, let oldest = entries.min(by: { $0.value.expires < $1.value.expires })?.key {
                entries[oldest] = nil
            }
            entries[id] = Entry(box: box, expires: now.addingTimeInterval(lifetime))
        }
        return "\(Self.cookie)=\(id).\(key); Path=\(base.isEmpty ? "/" : base); HttpOnly; SameSite=Strict; Secure"
    }

    /// The request's grant, nil without a live session or with a cookie whose key
    /// does not open it.
    func grant(_ request: Request, now: Date) -> SessionGrant? {
        guard let (id, key) = Self.parts(request) else { return nil }
        let box: SealedGrant? = lock.withLock {
            guard let e = entries[id] else { return nil }
            if e.expires < now { entries[id] = nil; return nil }
            return e.box
        }
        return box.flatMap { SessionGrant.open($0, cookieKey: key) }
    }

    /// Ends the request's session; the Set-Cookie value that clears the cookie.
    func end(_ request: Request, base: String) -> String {
        if let (id, _) = Self.parts(request) { _ = lock.withLock { entries.removeValue(forKey: id) } }
        return "\(Self.cookie)=; Path=\(base.isEmpty ? "/" : base); Max-Age=0; HttpOnly; SameSite=Strict; Secure"
    }

    private func sweep(_ now: Date) {
        entries = entries.filter { $0.value.expires >= now }
    }

    private static func parts(_ request: Request) -> (String, String)? {
        guard let value = request.cookies[cookie]?.value else { return nil }
        let pieces = value.split(separator: ".", omittingEmptySubsequences: false)
        guard pieces.count == 2, Tokens.isToken(String(pieces[0]), length: 22),
              Tokens.isToken(String(pieces[1])) else { return nil }
        return (String(pieces[0]), String(pieces[1]))
    }
}

/// Attempts per client address (answers, passwords, sign-ins, reset requests):
/// a fixed window of a minute. Bounded: the table is cleared when it grows past
/// `capacity` addresses, which at worst lets an attacker with that many addresses
/// start afresh, still under each message's lockout.
final class AttemptLimiter: @unchecked Sendable {
    let perMinute: Int
    let capacity: Int
    private let lock = NSLock()
    private var window = Date.distantPast
    private var counts: [String: Int] = [:]

    init(perMinute: Int, capacity: Int = 100_000) {
        self.perMinute = perMinute
        self.capacity = capacity
    }

    /// Counts an attempt by `client`; the seconds to wait when over the limit.
    func admit(_ client: String, now: Date) -> Int? {
        lock.withLock {
            if now.timeIntervalSince(window) >= 60 || counts.count >= capacity {
                window = now
                counts = [:]
            }
            let n = counts[client, default: 0] + 1
            counts[client] = n
            return n > perMinute ? max(1, Int((60 - now.timeIntervalSince(window)).rounded(.up))) : nil
        }
    }
}
