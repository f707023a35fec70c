#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage

/// sl-deliver's record of what was delivered: (message key, recipient), one line
/// each, where the key is the message's digest (`X-SL-Message-Digest`, with size
/// 0) or, for routing made without one, its Message-ID and size on the wire; appended the moment the server accepts the message for a recipient,
/// read back at the start of every run. A delivery attempt skips a pair it finds
/// here, so a run killed at any moment (kill -9, a cron timeout), or a bulk input
/// fed again after an interrupted run, re-sends at most the transactions that
/// were in flight when it stopped: what Postfix's duplicate elimination does
/// within one message, across runs and processes.
///
/// Keyed on a Message-ID, the size on the wire is part of the key: a sender that
/// reuses a Message-ID for another message (it happens) must not have that message
/// skipped as delivered.
///
/// The line is written with one write(2) (O_APPEND) as soon as the reply comes,
/// so it survives the process whatever kills it; fsync is batched (at most every
/// `syncInterval` and at the end of the run), so a crash of the machine itself can
/// lose the last fraction of a second. Pairs older than `window` seconds are
/// forgotten, and the file is rewritten without them once they are most of it.
/// Several sl-deliver processes share the file: appends hold a shared lock on
/// `PATH.lock`, the rewrite an exclusive one.
///
/// sl-classify keeps one of its own (STATE/classified) to mark a classification
/// of the same message for the same recipient as a retry in its audit records.
public final class DeliveryRecord: @unchecked Sendable {
    public let path: String
    let window: Double
    static let syncInterval = 0.05

    private let lock = NSLock()
    private var seen: Set<String> = []
    private var lastSync = 0.0
    private var unsynced = false

    public init(path: String, window: Double, now: Double) throws {
        self.path = path
        self.window = window
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var total = 0
        for line in text.split(separator: "\n") {
            total += 1
            let fields = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, let time = Double(fields[0]), now - time <= window else { continue }
            seen.insert(fields[1] + "\t" + fields[2])       // as `key` wrote it
        }
        if total > 1000 && seen.count * 2 < total { compact(now: now, text: text) }
    }

    static func key(_ messageID: String, _ size: Int, _ recipient: String) -> String {
        clean(messageID) + "\t" + String(size) + "\t" + clean(recipient.lowercased())
    }

    /// A Message-ID or address as the record writes it: one line, no tabs.
    static func clean(_ s: String) -> String {
        OneLine.of(s).trimmingCharacters(in: .whitespaces)
    }

    public func contains(messageID: String, size: Int, recipient: String) -> Bool {
        lock.withLock { seen.contains(Self.key(messageID, size, recipient)) }
    }

    /// Records an accepted delivery now.
    public func record(messageID: String, size: Int, recipient: String, now: Double) {
        let key = Self.key(messageID, size, recipient)
        let line = Array("\(Int(now))\t\(key)\n".utf8)
        lock.withLock {
            guard seen.insert(key).inserted else { return }
            withShared {
                let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
                guard fd >= 0 else { return }
                defer { close(fd) }
                _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if now - lastSync >= Self.syncInterval { fsync(fd); lastSync = now; unsynced = false } else { unsynced = true }
            }
        }
    }

    /// Makes every record so far durable (the end of a run).
    public func sync() {
        lock.withLock {
            guard unsynced else { return }
            let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
            if fd >= 0 { fsync(fd); close(fd) }
            unsynced = false
        }
    }

    private func withShared(_ body: () -> Void) {
        let fd = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd >= 0 { flock(fd, LOCK_SH) }
        body()
        if fd >= 0 { close(fd) }
    }

    /// Rewrites the file with the pairs still inside the window, if no other
    /// process is appending right now (else next time).
    private func compact(now: Double, text: String) {
        let fd = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return }
        // Read again under the lock: another process may have appended since.
        let current = (try? String(contentsOfFile: path, encoding: .utf8)) ?? text
        var kept = ""
        for line in current.split(separator: "\n") {
            let fields = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            if fields.count == 3, let time = Double(fields[0]), now - time <= window { kept += line + "\n" }
        }
        let temporary = path + ".new"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(kept.utf8), attributes: [.posixPermissions: 0o600]) else { return }
        let t = open(temporary, O_RDONLY | O_CLOEXEC)
        if t >= 0 { fsync(t); close(t) }
        rename(temporary, path)
    }
}
