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
        case .weakKDF:
            return "key derivation parameters below the minimum (Argon2id: 2 passes, 19 MiB)"
        case .corrupt(let why): return "sealed content is corrupt: \(why)"
        case .storage(let why): return why
        }
    }
}
