/// Exit codes are the API: sysexits(3) values as Postfix pipe(8), procmail and
/// sendmail callers read them. Postfix defers on 75 only and bounces on every
/// other non-zero code (its sys_exits.c gives each its RFC 3463 status; our man
/// pages list them).
public enum Sysexit: Int32, Sendable, CaseIterable {
    case ok = 0
    case usage = 64
    case dataError = 65
    case noInput = 66
    case noUser = 67
    case unavailable = 69
    case software = 70
    case cantCreate = 73
    case ioError = 74
    case tempFail = 75
    case noPermission = 77
    case config = 78

    /// True when the caller should keep the message and try again later.
    public var isTemporary: Bool { self == .tempFail }
}

/// An error that says which exit it means. Every error type of sl states its own
/// code where it is defined, so the command layer maps errors without knowing
/// every module, and no error becomes 75 by accident (a test checks that every
/// error type of the sources conforms).
public protocol SysexitReporting: Error {
    var sysexit: Sysexit { get }
}

extension MessageError: SysexitReporting {
    public var sysexit: Sysexit {
        switch self {
        case .malformed, .invalidField: return .dataError
        case .io: return .tempFail
        }
    }
}

extension RejectedMessage: SysexitReporting {
    public var sysexit: Sysexit { .dataError }
}

extension AddressError: SysexitReporting {
    /// An address inside a message (an argument's is a usage error, said there).
    public var sysexit: Sysexit { .dataError }
}

extension WrongUser: SysexitReporting {
    /// The caller keeps the message; the right user's run takes it.
    public var sysexit: Sysexit { .tempFail }
}
