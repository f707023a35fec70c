import Foundation

/// What can go wrong with an escrow message, each a single line fit for a log or a
/// web page. No case ever carries a secret (answer, password, link, key).
public enum EscrowError: Error, CustomStringConvertible, Equatable {
    case notFound
    case retracted
    case expired(Date)
    case lockedOut
    case wrongLink
    /// A wrong answer, counted as a failed attempt; `remaining` attempts are left.
    case wrongAnswer(remaining: Int)
    case wrongPassword
    case noAccount(String)
    case accountExists(String)
    /// A login recipient with no escrow account yet: they set a password first
    /// (the portal's link page offers it), which creates the account.
    case accountNeeded(String)
    /// Sealed for the account's key before its password was reset: no key opens it.
    case sealedForEarlierPassword
    /// Not openable from the message center yet: it must be opened once with the
    /// link from its notice (sealed before the account existed).
    case linkNeeded
    /// A password-reset link that is unknown, used or expired.
    case wrongToken
    /// The recipient sent as many replies to this message as the portal allows.
    case replyLimit(Int)
    /// A SecureSend sender sent as many messages today as the portal allows.
    case dailyLimit(Int)
    case weakKDF
    /// Sealed content fails authentication or is truncated.
    case corrupt(String)
    /// SQLite or the file system failed.
    case storage(String)

    public var description: String {
        switch self {
        case .notFound: return "no such escrow message"
        case .retracted: return "retracted by the sender"
        case .expired(let date):
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withInternetDateTime]
            return "expired on \(f.string(from: date))"
        case .lockedOut: return "locked: too many wrong answers"
        case .wrongLink: return "the link is not valid for this message"
        case .wrongAnswer(let remaining):
            return "wrong answer (\(remaining) attempt\(remaining == 1 ? "" : "s") left)"
        case .wrongPassword: return "wrong password"
        case .noAccount(let address): return "no escrow account for \(address)"
        case .accountExists(let address): return "an escrow account for \(address) exists already"
        case .accountNeeded(let address): return "\(address) has no escrow account yet: set a password with the link from the notice"
        case .sealedForEarlierPassword: return "sealed for the account's key before its password was reset; the sender must send it again"
        case .linkNeeded: return "open this message once with the link from its notice"
        case .wrongToken: return "the link is not valid (unknown, used or expired)"
        case .replyLimit(let n): return "\(n) repl\(n == 1 ? "y" : "ies") to this message already, the most allowed"
        case .dailyLimit(let n): return "\(n) message\(n == 1 ? "" : "s") from this address today already, the most allowed"
        case .weakKDF:
            return "key derivation parameters below the minimum (Argon2id: 2 passes, 19 MiB)"
        case .corrupt(let why): return "sealed content is corrupt: \(why)"
        case .storage(let why): return why
        }
    }
}
