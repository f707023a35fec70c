import Foundation

/// What the portal does with escrow accounts: sign in, the message center (a
/// recipient's inbox, a sender's sent messages, retraction), and setting or
/// resetting a password by a link mailed to the address.
///
/// Zero knowledge holds throughout: an account's private key is sealed under its
/// password, so the store cannot open its messages, and a password reset cannot
/// recover the old key. A reset makes a new key pair; messages sealed for the old
/// one stay sealed for good (`EscrowError.sealedForEarlierPassword`), and their
/// senders must send them again. Messages sealed before the account existed are
/// sealed under their link alone, so they survive a reset: the next open with the
/// link and the new password moves them to the new key.
extension EscrowStore {
    /// Password-reset links stay valid this long.
    public static let resetLifetime: TimeInterval = 3600
    /// At most this many unused reset links per address at once: a form that mails
    /// links must not become a way to flood someone's mailbox.
    public static let outstandingResets = 3

    /// The account unlocked with its password. An unknown address costs the same
    /// derivation as a known one (with `parameters`) and says wrongPassword, so the
    /// sign-in form does not tell who has an account.
    public func signIn(address: String, password: String, parameters: KDFParameters? = nil) throws -> AccountKey {
        let lower = address.lowercased()
        do {
            guard let account = try unlockAccount(lower, password: password) else { throw EscrowError.wrongPassword }
            return AccountKey(address: lower, publicKey: account.publicKey, secretKey: account.secretKey)
        } catch EscrowError.noAccount {
            if let parameters { _ = try? passwordKey(password, salt: Sodium.randomBytes(16), parameters: parameters) }
            throw EscrowError.wrongPassword
        }
    }

    /// Login-mode messages addressed to the account, newest first.
    public func inbox(for account: AccountKey, now: Date) throws -> [InboxEntry] {
        try db.query("""
            SELECT r.message_id, r.idx, m.sender, m.created, m.expires, m.retracted, m.purged, r.first_open,
                   r.locked, r.pending_account, r.account_wrap
            FROM recipients r JOIN messages m ON m.id = r.message_id
            WHERE lower(r.address) = ? AND r.mode = 'login'
            ORDER BY m.created DESC, r.message_id, r.idx
            """, [.text(account.address)]) { s in
            let expires = Date(timeIntervalSince1970: s.double(4))
            let state: InboxEntry.State
            if !s.isNull(5) {
                state = .retracted
            } else if s.int(6) != 0 || now > expires {
                state = .expired
            } else if s.int(8) != 0 {
                state = .locked
            } else if s.int(9) != 0 {
                state = .needsLink
            } else if let wrap = s.blob(10) {
                state = Wrap.boxSealOpen(wrap, publicKey: account.publicKey, secretKey: account.secretKey) == nil
                    ? .sealedForEarlierPassword : .readable
            } else {
                state = .needsLink
            }
            return InboxEntry(id: s.text(0), index: s.int(1), sender: s.text(2),
                              created: Date(timeIntervalSince1970: s.double(3)), expires: expires,
                              firstOpen: s.optionalDouble(7).map(Date.init(timeIntervalSince1970:)), state: state)
        }
    }

    /// The key of a message in the account's inbox, without its link.
    public func unlock(id: String, index: Int, account: AccountKey, now: Date) throws -> ContentKey {
        guard let row = try recipientRow(id: id, index: index), row.mode == "login",
              row.address.lowercased() == account.address else { throw EscrowError.notFound }
        if row.retracted { throw EscrowError.retracted }
        if row.purged || now > row.expires { throw EscrowError.expired(row.expires) }
        if row.locked { throw EscrowError.lockedOut }
        guard !row.pending, let wrap = row.accountWrap else { throw EscrowError.linkNeeded }
        guard let key = Wrap.boxSealOpen(wrap, publicKey: account.publicKey, secretKey: account.secretKey) else {
            throw EscrowError.sealedForEarlierPassword
        }
        return ContentKey(id: id, index: index, key: key)
    }

    /// Messages the account sent, newest first (escrow_message_center).
    public func sent(by account: AccountKey) throws -> [MessageStatus] {
        try list().filter { $0.sender.lowercased() == account.address }
    }

    /// The sender's key of a message packed with messageCenter.
    public func unlockAsSender(id: String, account: AccountKey, now: Date) throws -> ContentKey {
        let rows = try db.query("SELECT sender, expires, retracted, purged, sender_wrap FROM messages WHERE id = ?",
                                [.text(id)]) { s in
            (sender: s.text(0), expires: Date(timeIntervalSince1970: s.double(1)), retracted: !s.isNull(2),
             purged: s.int(3) != 0, wrap: s.blob(4))
        }
        guard let m = rows.first, m.sender.lowercased() == account.address else { throw EscrowError.notFound }
        if m.retracted { throw EscrowError.retracted }
        if m.purged || now > m.expires { throw EscrowError.expired(m.expires) }
        guard let wrap = m.wrap else { throw EscrowError.notFound }
        guard let key = Wrap.boxSealOpen(wrap, publicKey: account.publicKey, secretKey: account.secretKey) else {
            throw EscrowError.sealedForEarlierPassword
        }
        return ContentKey(id: id, index: nil, key: key)
    }

    /// The sender retracts their own message; anyone else's is notFound.
    public func retract(id: String, by account: AccountKey, now: Date) throws {
        let sender = try db.query("SELECT sender FROM messages WHERE id = ?", [.text(id)]) { $0.text(0) }.first
        guard let sender, sender.lowercased() == account.address else { throw EscrowError.notFound }
        try retract(id: id, now: now)
    }

    /// A login recipient without an account sets a password with the link of a
    /// message sealed for them: the account is made (a new key pair, the private
    /// key sealed under the password) and the message moves to it and opens.
    /// Whoever holds the link can do this: the link went to the recipient's mailbox,
    /// so this is exactly as strong as that mailbox (question mode is stronger).
    public func setUpAccount(id: String, index: Int, linkSecret: String, password: String,
                             parameters: KDFParameters, now: Date) throws -> ContentKey {
        let (row, link) = try checkedRow(id: id, index: index, linkSecret: linkSecret, now: now)
        guard row.mode == "login", row.pending else { throw EscrowError.accountExists(row.address) }
        try createAccount(address: row.address, password: password, parameters: parameters)
        guard let account = try unlockAccount(row.address, password: password) else {
            throw EscrowError.corrupt("the new account does not open with its password")
        }
        let key = try loginContentKey(row, id: id, index: index, link: link, account: account)
        return ContentKey(id: id, index: index, key: key)
    }

    /// A one-time password-reset link's secret for an account, to be mailed to its
    /// address; nil when there is no such account or it has enough unused links
    /// (the caller says the same either way).
    public func issueResetToken(address: String, now: Date) throws -> String? {
        let lower = address.lowercased()
        return try db.transaction { () -> String? in
            try db.run("DELETE FROM account_tokens WHERE expires < ?", [.real(now.timeIntervalSince1970)])
            guard try hasAccount(lower) else { return nil }
            let open = try db.query("SELECT count(*) FROM account_tokens WHERE address = ?", [.text(lower)]) { $0.int(0) }.first ?? 0
            guard open < Self.outstandingResets else { return nil }
            let token = SecretBytes.random(Self.linkSecretBytes)
            try db.run("INSERT INTO account_tokens(verifier, address, expires) VALUES (?, ?, ?)",
                       [.blob(resetVerifier(token)), .text(lower), .real(now.timeIntervalSince1970 + Self.resetLifetime)])
            return Sodium.base64url(token)
        }
    }

    /// Uses a reset link: the account gets a new key pair under the new password
    /// and every reset link of the address is spent. Returns the address.
    @discardableResult
    public func resetPassword(token: String, password: String, parameters: KDFParameters, now: Date) throws -> String {
        guard let secret = Sodium.fromBase64url(token, count: Self.linkSecretBytes) else { throw EscrowError.wrongToken }
        let verifier = resetVerifier(secret)
        let pair = Wrap.keyPair()
        let sealed = try sealPrivateKey(pair.secretKey, password: password, parameters: parameters)
        return try db.transaction { () -> String in
            guard let address = try db.query("SELECT address FROM account_tokens WHERE verifier = ? AND expires >= ?",
                                             [.blob(verifier), .real(now.timeIntervalSince1970)], { $0.text(0) }).first else {
                throw EscrowError.wrongToken
            }
            try db.run("""
                UPDATE accounts SET public_key = ?, sealed_private_key = ?, nonce = ?, salt = ?, kdf_ops = ?, kdf_mem = ?
                WHERE address = ?
                """, [.blob(pair.publicKey), .blob(sealed.sealed), .blob(sealed.nonce), .blob(sealed.salt),
                      .int(Int64(parameters.opsLimit)), .int(parameters.memoryLimit), .text(address)])
            guard db.changes == 1 else { throw EscrowError.wrongToken }
            try db.run("DELETE FROM account_tokens WHERE address = ?", [.text(address)])
            return address
        }
    }

    private func resetVerifier(_ token: SecretBytes) -> [UInt8] {
        Sodium.hash([.text("sl-escrow reset v1"), .secret(token)], key: pepperKey).publicCopy()
    }
}
