import SLEscrow
import SLMessage
import SLPGP
import SLSMIME
import SLPolicy
import SLTransport

/// Exit codes are the API: sysexits(3) values as Postfix pipe(8), procmail and
/// sendmail callers read them. One table gives each its RFC 3463 status and whether
/// the caller should retry (soft) or give up (hard), as Postfix's sys_exits.c does.
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

    /// RFC 3463 enhanced status code a mail system reports for this exit.
    public var enhancedStatus: String {
        switch self {
        case .ok: return "2.0.0"
        case .usage: return "5.3.0"
        case .dataError: return "5.6.0"
        case .noInput: return "5.3.0"
        case .noUser: return "5.1.1"
        case .cantCreate: return "5.3.0"
        case .unavailable: return "5.3.0"
        case .software: return "5.3.0"
        case .ioError: return "5.3.0"
        case .tempFail: return "4.3.0"
        case .noPermission: return "5.7.0"
        case .config: return "5.3.5"
        }
    }

    /// True when the caller should keep the message and try again later.
    public var isTemporary: Bool { self == .tempFail }
}

extension Sysexit {
    /// The exit for an error. Anything unexpected is EX_TEMPFAIL: the caller keeps the
    /// message and tries again, which is always safe; bouncing on our bug is not.
    public init(for error: any Error) {
        switch error {
        case let e as MessageError:
            switch e {
            case .malformed, .invalidField: self = .dataError
            case .io: self = .tempFail
            }
        case is ConfigurationError, is AddressBookError, is TransportTableError, is TLSSetupError, is PGPHomeError: self = .config
        case is AddressError: self = .dataError     // an address inside a message
        // Outside a pipeline's per-recipient handling: an answer or account that is
        // missing now may be there on the next try; a key or certificate will not.
        case is EscrowRefusal: self = .tempFail
        case is PolicyRefusal, is any RecipientRefusal: self = .unavailable
        case is PGPError, is SMIMEError: self = .tempFail
        case is UsageError: self = .usage
        case let e as EscrowError:
            switch e {
            case .notFound: self = .noInput
            case .retracted, .expired, .lockedOut, .wrongLink, .wrongAnswer, .wrongPassword: self = .noPermission
            case .noAccount: self = .noUser
            case .accountExists: self = .cantCreate
            case .weakKDF: self = .config
            case .corrupt: self = .dataError
            case .storage: self = .tempFail
            }
        case is EscrowStoreDamaged: self = .ioError
        case is WrongUser: self = .tempFail
        default: self = .tempFail
        }
    }
}

/// A command-line mistake found after argument parsing (a bad recipient address...).
public struct UsageError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
