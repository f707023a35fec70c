import Foundation
import SLMessage

/// SecureSend: messages written on the portal's public form to the organisation's
/// users. Until its sender proves their address with the link mailed to them, a
/// message waits here sealed (as escrow content is) under a key
/// wrapped with that link's secret alone, and the store keeps only the link's
/// verifier: nothing here opens it without the link. Following the link releases
/// it once; an unverified one is destroyed at its expiry (`purge`). Messages from a
/// sender who signed in with an account are only recorded (no content).
extension EscrowStore {
    /// Seals `message` to wait for its sender's link; (id, link secret).
    public func holdInbound(_ message: Message, sender: String, recipient: String, now: Date, expires: Date) throws
        -> (id: String, token: String) {
        let id = Sodium.hex(Sodium.randomBytes(16))
        let contentKey = SecretBytes.random(Self.contentKeyBytes)
        let token = SecretBytes.random(Self.linkSecretBytes)
        let wrapped = Wrap.seal(contentKey, key: inboundKey(token), ad: Array(id.utf8))
        _ = try storeRecord(message, id: id, key: contentKey) { size in
            try db.run("""
                INSERT INTO inbound(id, sender, recipient, created, expires, verifier, wrap_nonce, wrapped_key, size, delivered, verified_by)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)
                """, [.text(id), .text(sender.lowercased()), .text(recipient.lowercased()), .real(now.timeIntervalSince1970),
                      .real(expires.timeIntervalSince1970), .blob(inboundVerifier(token)), .blob(wrapped.nonce),
                      .blob(wrapped.ciphertext), .int(size)])
        }
        return (id, Sodium.base64url(token))
    }

    /// The held message a link names, for handing on: wrongToken when the link is
    /// unknown, used or expired. Nothing changes until `markInboundDelivered`.
    public func releaseInbound(token: String, now: Date) throws -> (id: String, sender: String, recipient: String, message: Bytes) {
        guard let secret = Sodium.fromBase64url(token, count: Self.linkSecretBytes) else { throw EscrowError.wrongToken }
        guard let row = try db.query("""
            SELECT id, sender, recipient, expires, wrap_nonce, wrapped_key FROM inbound
            WHERE verifier = ? AND delivered IS NULL
            """, [.blob(inboundVerifier(secret))], {
            (id: $0.text(0), sender: $0.text(1), recipient: $0.text(2), expires: Date(timeIntervalSince1970: $0.double(3)),
             nonce: $0.blob(4), wrapped: $0.blob(5))
        }).first, now <= row.expires, let nonce = row.nonce, let wrapped = row.wrapped else { throw EscrowError.wrongToken }
        guard let key = Wrap.open(wrapped, nonce: nonce, key: inboundKey(secret), ad: Array(row.id.utf8)) else {
            throw EscrowError.corrupt("the held message's key does not open with its link")
        }
        var bytes = Bytes()
        try streamContent(id: row.id, key: key) { bytes.append(contentsOf: $0) }
        return (row.id, row.sender, row.recipient, bytes)
    }

    /// Handed on: the link is spent and the content destroyed (its key and file).
    public func markInboundDelivered(id: String, now: Date) throws {
        try db.transaction {
            try db.run("""
                UPDATE inbound SET delivered = ?, verified_by = 'mail link', verifier = NULL, wrap_nonce = NULL, wrapped_key = NULL
                WHERE id = ?
                """, [.real(now.timeIntervalSince1970), .text(id)])
            try content.destroyInTransaction(id: id)
        }
        content.destroyAfterCommit(id: id)
    }

    /// A message from a signed-in account, handed on at once: recorded, no content.
    public func recordInbound(sender: String, recipient: String, size: Int, now: Date) throws {
        try db.run("""
            INSERT INTO inbound(id, sender, recipient, created, expires, verifier, wrap_nonce, wrapped_key, size, delivered, verified_by)
            VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?, 'account')
            """, [.text(Sodium.hex(Sodium.randomBytes(16))), .text(sender.lowercased()), .text(recipient.lowercased()),
                  .real(now.timeIntervalSince1970), .real(now.timeIntervalSince1970), .int(size), .real(now.timeIntervalSince1970)])
    }

    /// Messages `sender` wrote on the form since `since`, held or handed on.
    public func inboundCount(sender: String, since: Date) throws -> Int {
        try db.query("SELECT count(*) FROM inbound WHERE sender = ? AND created >= ?",
                     [.text(sender.lowercased()), .real(since.timeIntervalSince1970)]) { $0.int(0) }.first ?? 0
    }

    /// What `account` sent through the form, newest first.
    public func inbound(sentBy account: AccountKey) throws -> [InboundRecord] {
        try db.query("""
            SELECT id, recipient, created, delivered, size, verified_by, expires FROM inbound WHERE sender = ? ORDER BY created DESC
            """, [.text(account.address)]) {
            InboundRecord(id: $0.text(0), recipient: $0.text(1), created: Date(timeIntervalSince1970: $0.double(2)),
                          delivered: $0.optionalDouble(3).map(Date.init(timeIntervalSince1970:)), size: $0.int(4),
                          verifiedBy: $0.optionalText(5), expires: Date(timeIntervalSince1970: $0.double(6)))
        }
    }

    /// Unverified messages past their expiry: key and file destroyed, the row kept
    /// (for the daily count and the record).
    func purgeInbound(now: Date) throws {
        let due = try db.query("SELECT id FROM inbound WHERE delivered IS NULL AND wrapped_key IS NOT NULL AND expires < ?",
                               [.real(now.timeIntervalSince1970)]) { $0.text(0) }
        for id in due {
            try db.transaction {
                try db.run("UPDATE inbound SET verifier = NULL, wrap_nonce = NULL, wrapped_key = NULL WHERE id = ?", [.text(id)])
                try content.destroyInTransaction(id: id)
            }
            content.destroyAfterCommit(id: id)
        }
    }

    func heldInboundIDs() throws -> [String] {
        try db.query("SELECT id FROM inbound WHERE wrapped_key IS NOT NULL") { $0.text(0) }
    }

    func allInboundIDs() throws -> [String] {
        try db.query("SELECT id FROM inbound") { $0.text(0) }
    }

    private func inboundKey(_ token: SecretBytes) -> SecretBytes {
        Sodium.hash([.text("sl-escrow inbound key v1"), .secret(token)], key: pepperKey)
    }

    private func inboundVerifier(_ token: SecretBytes) -> [UInt8] {
        Sodium.hash([.text("sl-escrow inbound v1"), .secret(token)], key: pepperKey).publicCopy()
    }
}

/// A SecureSend message as its sender's message center lists it.
public struct InboundRecord: Sendable, Equatable {
    public let id: String
    public let recipient: String
    public let created: Date
    /// When it was handed on; nil while it waits for the link (or after it expired).
    public let delivered: Date?
    public let size: Int
    /// "mail link" or "account"; nil while unverified.
    public let verifiedBy: String?
    public let expires: Date
}
