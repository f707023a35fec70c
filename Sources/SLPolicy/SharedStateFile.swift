import Foundation

/// A small state file that processes on one machine rewrite side by side (the TLS
/// cache, the MTA-STS policy cache, the TLS session log): writers serialise on an
/// exclusive flock(2) of PATH.lock — a file that is never replaced, so a writer
/// waiting for the lock never ends up holding a file that was renamed away —
/// re-read under it, and put the new contents in place by rename(2), so that
/// readers see the old file or the new one, never half of one.
public enum SharedStateFile {
    /// Runs `body` holding the exclusive lock of `path`. `what` names the file in
    /// errors ("the TLS cache"); failures are configuration errors (78): a
    /// directory the tool cannot write.
    public static func locked<T>(_ path: String, what: String, _ body: () throws -> T) throws -> T {
        let lock = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else {
            throw ConfigurationError(path, 0, "cannot open the lock file of \(what), \(path).lock: \(String(cString: strerror(errno)))")
        }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 {
            guard errno == EINTR else { throw ConfigurationError(path, 0, "cannot lock \(what): \(String(cString: strerror(errno)))") }
        }
        defer { _ = flock(lock, LOCK_UN) }
        return try body()
    }

    /// Puts `data` in place of the file at `path`: written beside it, synced,
    /// renamed over it. Call while holding the lock.
    public static func replace(_ path: String, with data: Data, what: String, mode: mode_t = 0o644) throws {
        let temporary = path + ".new.\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else {
            throw ConfigurationError(path, 0, "cannot write \(temporary) (\(String(cString: strerror(errno)))); is the directory writable?")
        }
        let written = data.withUnsafeBytes { raw -> Bool in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n > 0 { done += n } else if n < 0 && errno == EINTR { continue } else { return false }
            }
            return true
        }
        let synced = written && fsync(fd) == 0
        close(fd)
        guard synced, rename(temporary, path) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(temporary)
            throw ConfigurationError(path, 0, "cannot replace \(what): \(why)")
        }
    }
}
