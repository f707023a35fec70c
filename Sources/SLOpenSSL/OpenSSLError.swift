internal import COpenSSL

/// An OpenSSL failure in words. OpenSSL reports failures through a per-thread error
/// queue; this is the one place sl reads it. Making an error empties the queue, so a
/// failure left behind cannot be blamed on a later, unrelated call, and the queue's
/// entries are turned into one line, never printed raw.
public struct OpenSSLError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String

    /// `what` failed; OpenSSL's reasons, when it queued any, follow after a colon.
    package init(_ what: String) {
        var reasons: [String] = []
        while true {
            let e = ERR_get_error()
            if e == 0 { break }
            if let r = ERR_reason_error_string(e) { reasons.append(String(cString: r)) }
        }
        description = reasons.isEmpty ? what : "\(what): \(reasons.joined(separator: "; "))"
    }

    /// A failure in our own words only, for when OpenSSL's reasons would mislead (a
    /// parser's "wrong tag" for data that is simply not a certificate). The queue is
    /// still emptied.
    package init(plain: String) {
        ERR_clear_error()
        description = plain
    }
}
