/// Errors about message content. Each maps to a sysexits code in SLCommand: a message
/// we cannot parse is EX_DATAERR (65), which tells Postfix and procmail to keep it and
/// report, never to drop it.
public enum MessageError: Error, Equatable, CustomStringConvertible {
    /// The message or stream is not well formed enough to process.
    case malformed(String)
    /// A header field we were asked to write would be invalid (a caller's bug or
    /// attacker-controlled input that must not reach a header).
    case invalidField(String)
    /// Reading or writing the stream failed (disk full, closed pipe, ...).
    case io(String)

    public var description: String {
        switch self {
        case .malformed(let s): return "malformed message: \(s)"
        case .invalidField(let s): return "invalid header field: \(s)"
        case .io(let s): return s
        }
    }
}
