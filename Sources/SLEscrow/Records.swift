import Foundation

/// One recipient of an escrow message and how they prove who they are.
public struct EscrowRecipient: Sendable {
    public enum Verification: Sendable {
        /// A security question (stored in clear: it is shown on the web page) and the
        /// key derived from its answer.
        case question(String, AnswerKey)
        /// The recipient's escrow account password.
        case login
    }
    public var address: String
    public var verification: Verification

    public init(address: String, verification: Verification) {
        self.address = address
        self.verification = verification
    }

    var isLogin: Bool { if case .login = verification { return true } else { return false } }
}

/// What `pack` returns: the id and one link secret per recipient, which exist nowhere
/// else. The tool puts each into its recipient's notice and forgets it.
public struct PackedMessage: Sendable {
    public let id: String
    public struct Link: Sendable {
        public let address: String
        /// 0-based position in the `recipients` given to `pack`.
        public let index: Int
        /// base64url without padding of the 32-byte link secret.
        public let secret: String
        /// A login recipient without an account: the link first sets a password.
        public var setsPassword = false
    }
    /// In recipient order.
    public let links: [Link]
}

public struct RecipientStatus: Sendable, Codable {
    public let index: Int
    public let address: String
    /// "question" or "login".
    public let mode: String
    public let question: String?
    public let firstOpen: Date?
    public let lastOpen: Date?
    public let failedAttempts: Int
    public let locked: Bool
    /// Secure replies sent from the portal (status of one message only).
    public var replies: [ReplyRecord] = []
}

public struct MessageStatus: Sendable, Codable {
    public let id: String
    public let sender: String
    public let created: Date
    public let expires: Date
    public let retracted: Date?
    public let purged: Bool
    /// Plaintext size in bytes.
    public let size: Int
    public let recipients: [RecipientStatus]
}

/// A read receipt to send: `recipient` opened message `id` first at `opened`.
public struct Receipt: Sendable {
    public let id: String
    public let sender: String
    public let recipient: String
    public let index: Int
    public let opened: Date
    /// The original's Message-ID (nil for a message stored before it was kept).
    public var originalID: String? = nil
    /// When it was sealed.
    public var sent: Date? = nil
}

public struct AccountInfo: Sendable, Codable {
    public let address: String
    public let created: Date
}

/// What is shown to a recipient holding a valid link, before any secret
/// (`EscrowStore.preview`).
public struct PickupPreview: Sendable, Equatable {
    /// How the recipient proves who they are.
    public enum Proof: Sendable, Equatable {
        /// Answer this question.
        case question(String)
        /// The escrow account's password.
        case login
        /// A login recipient without an account yet: choose a password, which
        /// creates the account and opens the message.
        case setPassword
    }
    public let id: String
    public let index: Int
    public let sender: String
    public let recipient: String
    public let expires: Date
    public let proof: Proof
    /// Wrong answers or passwords left before the lockout.
    public let attemptsLeft: Int
}

/// A login-mode message addressed to an account, as its message center lists it.
public struct InboxEntry: Sendable, Equatable {
    public enum State: String, Sendable, Equatable {
        /// Opens with the signed-in account.
        case readable
        /// Sealed before the account existed: open it once with its notice's link.
        case needsLink
        /// Sealed for the key the account had before a password reset.
        case sealedForEarlierPassword
        case retracted, expired, locked
    }
    public let id: String
    public let index: Int
    public let sender: String
    public let created: Date
    public let expires: Date
    public let firstOpen: Date?
    public let state: State
}
