import Foundation
import HTTPTypes
import Hummingbird
import SLEscrow
import SLPolicy

/// What every page handler shares: where the portal is served, the store's
/// derivation pool, sessions, the per-client limit, the account mailer, the audit
/// log and the settings that shape pages.
final class PortalState: @unchecked Sendable {
    let base: String
    /// escrow_url: what links in mails start with.
    let publicURL: String
    /// Argon2id work: answers, passwords, sign-ins, new accounts and resets.
    let pool: StorePool
    /// Work without a key derivation (reading within a session, the message
    /// center, withdrawing), on connections of its own: a reader never waits
    /// behind derivations, nor takes a slot one needs.
    let readers: StorePool
    let sessions: SessionTable
    let limiter: AttemptLimiter
    let mailer: AccountMailer?
    let audit: AuditDestination
    /// Argon2id parameters for new and reset account passwords (escrow_kdf_*).
    let kdf: KDFParameters
    /// escrow_message_center: senders see and retract what they sent.
    let messageCenter: Bool
    let behindProxy: Bool
    /// From field and host name of account mail: escrow_notice_from, hostname.
    let mailFrom: String
    let hostname: String
    /// Replies and SecureSend messages: portal_submit_command, or sl-send beside
    /// sl-portal; nil when neither is there (the forms are then not offered).
    var submitter: Handover?
    var maxReplies = 5
    /// portal_upload_limit in octets.
    var uploadLimit = 10 * 1024 * 1024
    var secureSend: SecureSendSettings?

    struct SecureSendSettings: Sendable {
        var recipients: [String]
        var daily: Int
        var expiry: TimeInterval

        /// Whether the form may write to `address`: listed, or in a listed domain.
        func allows(_ address: String) -> Bool {
            let lower = address.lowercased()
            guard let at = lower.lastIndex(of: "@") else { return false }
            let domain = String(lower[lower.index(after: at)...])
            return recipients.contains { entry in
                entry.contains("@") && !entry.hasPrefix("@") ? entry == lower : entry.trimmingCharacters(in: CharacterSet(charactersIn: "@")) == domain
            }
        }
    }

    init(base: String, publicURL: String, pool: StorePool, readers: StorePool, sessions: SessionTable, limiter: AttemptLimiter,
         mailer: AccountMailer?, audit: AuditDestination, kdf: KDFParameters, messageCenter: Bool, behindProxy: Bool,
         mailFrom: String, hostname: String) {
        self.base = base; self.publicURL = publicURL; self.pool = pool; self.readers = readers; self.sessions = sessions
        self.limiter = limiter; self.mailer = mailer; self.audit = audit; self.kdf = kdf
        self.messageCenter = messageCenter; self.behindProxy = behindProxy
        self.mailFrom = mailFrom; self.hostname = hostname
    }

    /// The client as the request log names it (PortalMiddleware.client).
    func client(_ request: Request, _ context: PortalContext) -> String {
        PortalMiddleware.client(peer: context.remoteAddress?.ipAddress,
                                forwardedFor: request.headers[values: .xForwardedFor],
                                behindProxy: behindProxy)
    }

    /// The minimum new passwords must reach: long enough that Argon2id is not the
    /// only thing between a stolen store and the messages.
    static let minimumPasswordLength = 10

    /// One audit record (escrow opens, sign-ins, accounts made and reset, retractions):
    /// who, what, from where; never a secret.
    func record(_ event: String, _ fields: [String: Any]) {
        guard let log = AuditLog(audit, tool: "sl-portal") else { return }
        var r = fields
        r["time"] = log.timestamp(Date())
        r["tool"] = "sl-portal"
        r["event"] = event
        do {
            try log.record(r)
            try log.commit()
        } catch {
            PortalLog.line("audit log: \(error)")
        }
    }
}
