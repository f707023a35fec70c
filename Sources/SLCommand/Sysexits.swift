import SLMessage

extension Sysexit {
    /// The exit for an error: the code its type states (`SysexitReporting`).
    /// Anything else (a system error from Foundation, say) is EX_TEMPFAIL: the
    /// caller keeps the message and tries again, which is always safe; bouncing
    /// on our bug is not.
    public init(for error: any Error) {
        self = (error as? any SysexitReporting)?.sysexit ?? .tempFail
    }
}

/// A command-line mistake found after argument parsing (a bad recipient address...).
public struct UsageError: SysexitReporting, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
    public var sysexit: Sysexit { .usage }
}
