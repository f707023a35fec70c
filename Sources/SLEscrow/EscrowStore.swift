internal import CSodium
import Foundation
import SLMessage
import SLPostgres
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The escrow store, in one of two places:
/// - a directory with `escrow.sqlite` (metadata, wrapped keys, verifiers, accounts)
///   and `content/ID.sealed` (each message's sealed content): one machine;
/// - a PostgreSQL database (`postgresql://…`), content included (EscrowSchema,
///   PostgresContentStore): every packer, portal and sl-escrow on every machine
///   sees one store.
///
/// What it never holds: plaintext content or subject, answers, link secrets, unwrapped
/// keys. Stealing the store yields ciphertext, Argon2id-salted answer material
/// (made harder still by a pepper kept elsewhere) and link verifiers that are useless
/// without the link.
///
/// Durability: a record's content and rows become visible together or not at all
/// (SealedContentStore). Several processes may use one store at once, each with its
/// own connection; transactions behave as if they ran one at a time (SQLite's
/// write lock taken up front, PostgreSQL's SERIALIZABLE), and the counters that
/// guard a message (failed attempts, lockout) change in single statements that
/// the database serialises per row.
///
/// One instance belongs to one thread at a time.
public final class EscrowStore {
    /// The database file in a store directory.
    public static let databaseName = "escrow.sqlite"

    /// The directory, or the PostgreSQL URI without its password.
    public let location: String
    let db: any EscrowDatabase
    let content: any SealedContentStore
    /// The BLAKE2b key made from the pepper, or nil for unkeyed hashing.
    let pepperKey: SecretBytes?
    let maximumAttempts: Int

    static let linkSecretBytes = 32
    static let contentKeyBytes = 32

    /// True when `location` names a PostgreSQL database rather than a directory.
    public static func isDatabase(_ location: String) -> Bool { PostgresURI.isURI(location) }

    /// A store directory (made if missing) or a PostgreSQL URI whose schema
    /// `sl-escrow migrate` made (else PostgresSchemaError, 78).
    public convenience init(location: String, pepper: SecretBytes? = nil, maximumAttempts: Int = 5) throws {
        if Self.isDatabase(location) {
            try self.init(postgres: location, pepper: pepper, maximumAttempts: maximumAttempts)
        } else {
            try self.init(directory: location, pepper: pepper, maximumAttempts: maximumAttempts)
        }
    }

    private init(database: any EscrowDatabase, content: any SealedContentStore, location: String,
                 pepper: SecretBytes?, maximumAttempts: Int) throws {
        self.db = database
        self.content = content
        self.location = location
        self.pepperKey = pepper.map(Pepper.hashKey)
        self.maximumAttempts = max(1, maximumAttempts)
    }

    private static func checkPepper(_ pepper: SecretBytes?) throws {
        try Sodium.requireReady()
        if let pepper, pepper.count < Pepper.minimumLength {
            throw EscrowError.storage("the pepper must be at least \(Pepper.minimumLength) bytes")
        }
    }

    private convenience init(postgres uri: String, pepper: SecretBytes?, maximumAttempts: Int) throws {
        try Self.checkPepper(pepper)
        // PostgresError as it is: its exit tells a server that is down (75, the
        // message waits) from refused credentials or a password in the URI (78).
        let db = try PostgresEscrowDatabase(uri: uri)
        try self.init(database: db, content: PostgresContentStore(db: db), location: db.connection.location,
                      pepper: pepper, maximumAttempts: maximumAttempts)
    }

    /// Creates or upgrades the escrow tables in the PostgreSQL database at `uri`;
    /// the versions before and after. Safe to run from several machines at once.
    @discardableResult
    public static func migrate(uri: String) throws -> (from: Int, to: Int) {
        let connection = try PostgresConnection(uri: uri)
        return try EscrowSchema.postgres.migrate(on: connection)
    }

    public convenience init(directory: String, pepper: SecretBytes? = nil, maximumAttempts: Int = 5) throws {
        try Self.checkPepper(pepper)
        let contentDirectory = directory + "/content"
        for d in [directory, contentDirectory] {
            do {
                try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw EscrowError.storage("cannot create the escrow directory \(d): \(error.localizedDescription)")
            }
        }
        let db = try Self.openSQLite(directory + "/" + Self.databaseName)
        try self.init(database: db, content: FileContentStore(directory: contentDirectory), location: directory,
                      pepper: pepper, maximumAttempts: maximumAttempts)
    }

    private static func openSQLite(_ path: String) throws -> SQLiteDatabase {
        // Created 0600 before SQLite sees it; the -wal and -shm files take its mode.
        // Only when it is new: closing a descriptor of a database this process has
        // open already (the portal's second connection) would drop that connection's
        // POSIX locks, and another process would then checkpoint and remove the WAL
        // the first still writes to, hiding its writes until it exits.
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 {
            close(fd)
        } else if errno != EEXIST {
            throw EscrowError.storage("cannot create the escrow database \(path): \(String(cString: strerror(errno)))")
        }
        let db = try SQLiteDatabase(path: path, busyTimeout: 10_000)
        try retryingBusy(db) { try db.execute("PRAGMA journal_mode=WAL") }
        try db.execute("PRAGMA synchronous=FULL")
        try db.execute("PRAGMA foreign_keys=ON")
        // Retract and purge null the wrapped keys; secure_delete overwrites the old
        // values in the database file too, so the unlinked content is crypto-shredded.
        try db.execute("PRAGMA secure_delete=ON")
        try db.transaction {
            try db.execute(Self.schema)
            try db.execute(Self.trackingSchema)     // open tracking, Tracking.swift
            // Version 2: accounts made by the portal, the message center's wraps.
            // Judged by the columns, not user_version: a version 1 binary still
            // running during an upgrade writes user_version = 1 on every open (and
            // its rows get the new columns' defaults, which mean what they meant).
            let columns = Set(try db.query("PRAGMA table_info(recipients)") { $0.text(1) })
            if !columns.contains("account_wrap") {
                try db.execute("ALTER TABLE recipients ADD COLUMN account_wrap BLOB")
            }
            if !columns.contains("pending_account") {
                try db.execute("ALTER TABLE recipients ADD COLUMN pending_account INTEGER NOT NULL DEFAULT 0")
            }
            // The original's Message-ID, which read receipts name (never its subject).
            let messageColumns = Set(try db.query("PRAGMA table_info(messages)") { $0.text(1) })
            if !messageColumns.contains("original_id") {
                try db.execute("ALTER TABLE messages ADD COLUMN original_id TEXT")
            }
            try db.execute("PRAGMA user_version = 2")
        }
        return db
    }

    static let schema = """
        CREATE TABLE IF NOT EXISTS messages(
            id TEXT PRIMARY KEY,
            sender TEXT NOT NULL,
            created REAL NOT NULL,
            expires REAL NOT NULL,
            retracted REAL,
            purged INTEGER NOT NULL DEFAULT 0,
            content_size INTEGER NOT NULL,
            sender_wrap BLOB,
            original_id TEXT);
        CREATE INDEX IF NOT EXISTS messages_created ON messages(created);
        CREATE INDEX IF NOT EXISTS messages_live ON messages(expires) WHERE purged = 0;
        CREATE TABLE IF NOT EXISTS recipients(
            message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            address TEXT NOT NULL,
            mode TEXT NOT NULL CHECK (mode IN ('question', 'login')),
            question TEXT,
            link_verifier BLOB NOT NULL,
            salt BLOB,
            kdf_ops INTEGER,
            kdf_mem INTEGER,
            wrap_nonce BLOB,
            wrapped_key BLOB,
            first_open REAL,
            last_open REAL,
            failed_attempts INTEGER NOT NULL DEFAULT 0,
            locked INTEGER NOT NULL DEFAULT 0,
            receipt_sent INTEGER NOT NULL DEFAULT 0,
            account_wrap BLOB,
            pending_account INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY(message_id, idx));
        CREATE INDEX IF NOT EXISTS recipients_receipts ON recipients(first_open)
            WHERE first_open IS NOT NULL AND receipt_sent = 0;
        CREATE TABLE IF NOT EXISTS accounts(
            address TEXT PRIMARY KEY,
            public_key BLOB NOT NULL,
            sealed_private_key BLOB NOT NULL,
            nonce BLOB NOT NULL,
            salt BLOB NOT NULL,
            kdf_ops INTEGER NOT NULL,
            kdf_mem INTEGER NOT NULL,
            created REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS account_tokens(
            verifier BLOB PRIMARY KEY,
            address TEXT NOT NULL,
            expires REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS replies(
            message_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            sent REAL NOT NULL,
            size INTEGER,
            state TEXT NOT NULL CHECK (state IN ('reserved', 'sent')));
        CREATE INDEX IF NOT EXISTS replies_message ON replies(message_id, idx);
        CREATE TABLE IF NOT EXISTS inbound(
            id TEXT PRIMARY KEY,
            sender TEXT NOT NULL,
            recipient TEXT NOT NULL,
            created REAL NOT NULL,
            expires REAL NOT NULL,
            verifier BLOB UNIQUE,
            wrap_nonce BLOB,
            wrapped_key BLOB,
            size INTEGER NOT NULL,
            delivered REAL,
            verified_by TEXT);
        CREATE INDEX IF NOT EXISTS inbound_sender ON inbound(sender, created);
        """

    /// Statements outside a transaction (switching to WAL at first use) can still
    /// report BUSY when two processes create the store at once.
    private static func retryingBusy(_ db: SQLiteDatabase, _ body: () throws -> Void) throws {
        var attempt = 0
        while true {
            do { return try body() } catch {
                attempt += 1
                guard db.lastErrorIsBusy, attempt < 5 else { throw error }
                usleep(100_000)
            }
        }
    }

    // MARK: key derivations

    func linkVerifier(_ link: SecretBytes) -> [UInt8] {
        Sodium.hash([.text("sl-escrow link v1"), .secret(link)]).publicCopy()
    }

    private func questionKEK(link: SecretBytes, answerKey: AnswerKey, id: String, index: Int) -> SecretBytes {
        Sodium.hash([.text("sl-escrow kek v1"), .secret(link), .secret(answerKey.key), .text(id), .text(String(index))],
                    key: pepperKey)
    }

    func loginKey(link: SecretBytes, id: String, index: Int) -> SecretBytes {
        Sodium.hash([.text("sl-escrow login v1"), .secret(link), .text(id), .text(String(index))], key: pepperKey)
    }

    func wrapAD(id: String, index: Int) -> [UInt8] { Array((id + String(index)).utf8) }

    /// Passwords are compared as typed, but in NFC, so the same password typed on
    /// two systems that compose accents differently still matches.
    func passwordKey(_ password: String, salt: [UInt8], parameters: KDFParameters) throws -> SecretBytes {
        try Sodium.argon2id(password.precomposedStringWithCanonicalMapping, salt: salt, parameters: parameters)
    }

    // MARK: pack

    /// Seals `message` (header bytes then body) and stores it; login-mode recipients
    /// need an account (else EscrowError.noAccount). messageCenter: also wrap for the
    /// sender's account (EscrowError.noAccount if none).
    public func pack(_ message: Message, sender: String, recipients: [EscrowRecipient], created: Date, expires: Date,
                     messageCenter: Bool = false) throws -> PackedMessage {
        // Accounts first: a missing one fails before any work is done.
        // A login recipient without an account yet is sealed under the link alone
        // until they set a password with it (pending_account; see setUpAccount).
        var accountKeys: [Int: [UInt8]] = [:]
        for (i, r) in recipients.enumerated() {
            if case .login = r.verification, try hasAccount(r.address) { accountKeys[i] = try publicKey(of: r.address) }
        }
        let senderKey = messageCenter ? try publicKey(of: sender) : nil

        let id = Sodium.hex(Sodium.randomBytes(16))
        let contentKey = SecretBytes.random(Self.contentKeyBytes)

        var links: [PackedMessage.Link] = []
        var rows: [[SQLValue]] = []
        for (i, r) in recipients.enumerated() {
            let link = SecretBytes.random(Self.linkSecretBytes)
            let ad = wrapAD(id: id, index: i)
            var row: [SQLValue] = [.text(id), .int(i), .text(r.address)]
            switch r.verification {
            case .question(let question, let answerKey):
                let kek = questionKEK(link: link, answerKey: answerKey, id: id, index: i)
                let wrapped = Wrap.seal(contentKey, key: kek, ad: ad)
                row += [.text("question"), .text(question), .blob(linkVerifier(link)), .blob(answerKey.salt),
                        .int(Int64(answerKey.parameters.opsLimit)), .int(answerKey.parameters.memoryLimit),
                        .blob(wrapped.nonce), .blob(wrapped.ciphertext)]
            case .login:
                let inner = Wrap.seal(contentKey, key: loginKey(link: link, id: id, index: i), ad: ad)
                row += [.text("login"), .null, .blob(linkVerifier(link)), .null, .null, .null, .blob(inner.nonce)]
                if let account = accountKeys[i] {
                    row += [.blob(Wrap.boxSeal(inner.ciphertext, publicKey: account)),
                            .blob(Wrap.boxSeal(contentKey, publicKey: account)), .int(0)]
                } else {
                    row += [.blob(inner.ciphertext), .null, .int(1)]
                }
            }
            if case .question = r.verification { row += [.null, .int(0)] }
            rows.append(row)
            links.append(PackedMessage.Link(address: r.address, index: i, secret: Sodium.base64url(link),
                                            setsPassword: r.isLogin && accountKeys[i] == nil))
        }
        let senderWrap = senderKey.map { Wrap.boxSeal(contentKey, publicKey: $0) }

        _ = try storeRecord(message, id: id, key: contentKey) { size in
            try db.run("""
                INSERT INTO messages(id, sender, created, expires, retracted, purged, content_size, sender_wrap, original_id)
                VALUES (?, ?, ?, ?, NULL, 0, ?, ?, ?)
                """, [.text(id), .text(sender), .real(created.timeIntervalSince1970),
                      .real(expires.timeIntervalSince1970), .int(size), .optionalBlob(senderWrap),
                      message.header["Message-ID"].map { .text(String($0.prefix(998))) } ?? .null])
            for row in rows {
                try db.run("""
                    INSERT INTO recipients(message_id, idx, address, mode, question, link_verifier, salt,
                                           kdf_ops, kdf_mem, wrap_nonce, wrapped_key, account_wrap, pending_account)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, row)
            }
        }
        return PackedMessage(id: id, links: links)
    }

    /// Seals `message` (header bytes then body) under `key` and stores it with the
    /// rows `rows` writes (given the plaintext size): both visible or neither.
    func storeRecord(_ message: Message, id: String, key: SecretBytes, rows: (Int) throws -> Void) throws -> Int {
        try content.store(id: id, in: db, seal: { sink in
            let sealer = try ContentSealer(key: key, ad: Array(id.utf8), sink: sink)
            try sealer.append(message.header.bytes[...])
            do {
                try message.body.forEachChunk { try sealer.append($0) }
            } catch let e as EscrowError {
                throw e
            } catch {
                throw EscrowError.storage("cannot read the message body: \(error)")
            }
            try sealer.finish()
            return sealer.plaintextCount
        }, rows: rows)
    }

    // MARK: open

    struct RecipientRow {
        var address: String
        var mode: String
        var verifier: [UInt8]
        var salt: [UInt8]?
        var ops: Int64?
        var mem: Int64?
        var nonce: [UInt8]?
        var wrapped: [UInt8]?
        var failed: Int
        var locked: Bool
        var expires: Date
        var retracted: Bool
        var purged: Bool
        var accountWrap: [UInt8]?
        var pending: Bool
    }

    func recipientRow(id: String, index: Int) throws -> RecipientRow? {
        try db.query("""
            SELECT r.address, r.mode, r.link_verifier, r.salt, r.kdf_ops, r.kdf_mem, r.wrap_nonce, r.wrapped_key,
                   r.failed_attempts, r.locked, m.expires, m.retracted, m.purged, r.account_wrap, r.pending_account
            FROM recipients r JOIN messages m ON m.id = r.message_id
            WHERE r.message_id = ? AND r.idx = ?
            """, [.text(id), .int(index)]) { s in
            RecipientRow(address: s.text(0), mode: s.text(1), verifier: s.blob(2) ?? [], salt: s.blob(3),
                         ops: s.optionalInt64(4), mem: s.optionalInt64(5), nonce: s.blob(6), wrapped: s.blob(7),
                         failed: s.int(8), locked: s.int(9) != 0, expires: Date(timeIntervalSince1970: s.double(10)),
                         retracted: !s.isNull(11), purged: s.int(12) != 0, accountWrap: s.blob(13),
                         pending: s.int(14) != 0)
        }.first
    }

    /// What a pickup page or prompt shows before it asks for a secret: who sent the
    /// message, to whom, until when, and how the recipient proves who they are.
    /// Judges the link and the message's state first, exactly as `open` does, so a
    /// forged link learns nothing (not even the question) and nobody is asked for
    /// the answer to an expired, retracted or locked message. Costs no attempt.
    public func preview(id: String, index: Int, linkSecret: String, now: Date) throws -> PickupPreview {
        var proof: PickupPreview.Proof? = nil
        do {
            _ = try unlock(id: id, index: index, linkSecret: linkSecret, now: now)
            throw EscrowError.corrupt("a message opened without its secret")     // cannot happen: unlock needs one
        } catch EscrowError.wrongAnswer, EscrowError.wrongPassword {
            // the link is good and the message can be opened: what to ask for
        } catch EscrowError.accountNeeded {
            proof = .setPassword
        }
        let message = try status(id: id)
        guard let r = message.recipients.first(where: { $0.index == index }) else { throw EscrowError.wrongLink }
        return PickupPreview(id: id, index: index, sender: message.sender, recipient: r.address, expires: message.expires,
                             proof: proof ?? (r.mode == "login" ? .login : .question(r.question ?? "")),
                             attemptsLeft: max(0, maximumAttempts - r.failedAttempts))
    }

    /// `unlock`, then `read` recording the open: the whole message to `output`.
    public func open(id: String, index: Int, linkSecret: String, answer: String? = nil, password: String? = nil,
                     now: Date, output: (ArraySlice<UInt8>) throws -> Void) throws {
        let key = try unlock(id: id, index: index, linkSecret: linkSecret, answer: answer, password: password, now: now)
        try read(key, recordOpen: true, now: now, output: output)
    }

    /// Verifies link (wrongLink), state (retracted/expired/lockedOut/notFound), then the
    /// answer (question mode) or password (login mode); a wrong answer/password
    /// increments failed_attempts (and locks at maximumAttempts) and throws
    /// wrongAnswer(remaining:)/wrongPassword. On success, the message's key.
    ///
    /// A missing answer (question mode) or password (login mode) throws
    /// wrongAnswer/wrongPassword without counting an attempt. The attempt is counted
    /// before the slow derivation and refunded on success, so parallel guesses cannot
    /// slip past the limit; a successful open resets the count.
    ///
    /// Login mode: a recipient without an account yet gets accountNeeded (they set a
    /// password with `setUpAccount`). A message sealed before the account existed is
    /// moved to the account's key the first time it opens, and from then on the
    /// message center opens it too.
    public func unlock(id: String, index: Int, linkSecret: String, answer: String? = nil, password: String? = nil,
                       now: Date) throws -> ContentKey {
        let (row, link) = try checkedRow(id: id, index: index, linkSecret: linkSecret, now: now)
        let isQuestion = row.mode == "question"
        if !isQuestion && row.pending, try !hasAccount(row.address) { throw EscrowError.accountNeeded(row.address) }
        if isQuestion && answer == nil { throw EscrowError.wrongAnswer(remaining: maximumAttempts - row.failed) }
        if !isQuestion && password == nil { throw EscrowError.wrongPassword }
        guard let nonce = row.nonce, let wrapped = row.wrapped else {
            throw EscrowError.corrupt("the wrapped key is missing")
        }

        // Charge the attempt now; only a success gives it back.
        // One statement, so the database serialises it per row: of guesses from any
        // number of processes and machines at once, exactly maximumAttempts are
        // charged, each with its own count.
        let charged = try db.query("""
            UPDATE recipients SET failed_attempts = failed_attempts + 1
            WHERE message_id = ? AND idx = ? AND locked = 0 AND failed_attempts < ?
            RETURNING failed_attempts
            """, [.text(id), .int(index), .int(maximumAttempts)]) { $0.int(0) }
        guard let attempt = charged.first else { throw EscrowError.lockedOut }

        let ad = wrapAD(id: id, index: index)
        let contentKey: SecretBytes?
        do {
            if isQuestion {
                guard let salt = row.salt, let ops = row.ops, let mem = row.mem else {
                    throw EscrowError.corrupt("the answer salt is missing")
                }
                let answerKey = try AnswerKey.derive(answer: answer!, salt: salt,
                                                     parameters: .stored(ops: ops, memory: mem))
                let kek = questionKEK(link: link, answerKey: answerKey, id: id, index: index)
                contentKey = Wrap.open(wrapped, nonce: nonce, key: kek, ad: ad)
            } else if let account = try unlockAccount(row.address, password: password!) {
                contentKey = try loginContentKey(row, id: id, index: index, link: link, account: account)
            } else {
                contentKey = nil
            }
        } catch {
            // Not the visitor's fault (no account any more, damaged row): refund.
            try? db.run("""
                UPDATE recipients SET failed_attempts = CASE WHEN failed_attempts > 0 THEN failed_attempts - 1 ELSE 0 END
                WHERE message_id = ? AND idx = ?
                """,
                        [.text(id), .int(index)])
            throw error
        }

        guard let contentKey else {
            try db.run("""
                UPDATE recipients SET locked = 1 WHERE message_id = ? AND idx = ? AND failed_attempts >= ?
                """, [.text(id), .int(index), .int(maximumAttempts)])
            if isQuestion { throw EscrowError.wrongAnswer(remaining: max(0, maximumAttempts - attempt)) }
            throw EscrowError.wrongPassword
        }
        try db.run("UPDATE recipients SET failed_attempts = 0 WHERE message_id = ? AND idx = ?", [.text(id), .int(index)])
        return ContentKey(id: id, index: index, key: contentKey)
    }

    /// The row for a link, after the link and the message's state were judged.
    func checkedRow(id: String, index: Int, linkSecret: String, now: Date) throws -> (RecipientRow, SecretBytes) {
        guard let row = try recipientRow(id: id, index: index) else { throw EscrowError.notFound }
        guard let link = Sodium.fromBase64url(linkSecret, count: Self.linkSecretBytes),
              Sodium.hash([.text("sl-escrow link v1"), .secret(link)]).constantTimeEquals(row.verifier) else {
            throw EscrowError.wrongLink
        }
        if row.retracted { throw EscrowError.retracted }
        if row.purged || now > row.expires { throw EscrowError.expired(row.expires) }
        if row.locked || row.failed >= maximumAttempts { throw EscrowError.lockedOut }
        return (row, link)
    }

    /// A login row's content key with the link and the unlocked account. A row
    /// sealed under the link alone (no account then) moves to the account's key now.
    func loginContentKey(_ row: RecipientRow, id: String, index: Int, link: SecretBytes,
                         account: UnlockedAccount) throws -> SecretBytes {
        guard let nonce = row.nonce, let wrapped = row.wrapped else { throw EscrowError.corrupt("the wrapped key is missing") }
        let ad = wrapAD(id: id, index: index)
        let innerCiphertext: [UInt8]
        if row.pending {
            innerCiphertext = wrapped
        } else {
            guard let inner = Wrap.boxSealOpen(wrapped, publicKey: account.publicKey, secretKey: account.secretKey) else {
                throw EscrowError.sealedForEarlierPassword
            }
            innerCiphertext = inner.publicCopy()
        }
        guard let key = Wrap.open(innerCiphertext, nonce: nonce, key: loginKey(link: link, id: id, index: index), ad: ad) else {
            throw EscrowError.corrupt("the wrapped key fails authentication")
        }
        if row.pending || row.accountWrap == nil {
            try db.run("""
                UPDATE recipients SET wrapped_key = ?, account_wrap = ?, pending_account = 0 WHERE message_id = ? AND idx = ?
                """, [.blob(Wrap.boxSeal(innerCiphertext, publicKey: account.publicKey)),
                      .blob(Wrap.boxSeal(key, publicKey: account.publicKey)), .text(id), .int(index)])
        }
        return key
    }

    /// Streams the message `key` opens to `output` chunk by chunk; every chunk is
    /// authenticated before it is handed over, and truncation or tampering throws
    /// .corrupt (the caller stages output, so a throw after some chunks is fine).
    /// Judges the message's state again: a key held in a session opens nothing once
    /// the message is retracted or expired. recordOpen: the recipient's first and
    /// last open are set once the last chunk was handed over.
    public func read(_ key: ContentKey, recordOpen: Bool = false, now: Date, output: (ArraySlice<UInt8>) throws -> Void) throws {
        guard let state = try db.query("SELECT retracted, purged, expires FROM messages WHERE id = ?", [.text(key.id)], {
            (retracted: !$0.isNull(0), purged: $0.int(1) != 0, expires: Date(timeIntervalSince1970: $0.double(2)))
        }).first else { throw EscrowError.notFound }
        if state.retracted { throw EscrowError.retracted }
        if state.purged || now > state.expires { throw EscrowError.expired(state.expires) }
        try streamContent(id: key.id, key: key.key, output: output)
        // Recorded once the whole message went out: a read receipt must not claim an
        // open that ended in a corrupt file or a caller that gave up.
        if recordOpen, let index = key.index {
            try db.run("""
                UPDATE recipients SET first_open = coalesce(first_open, ?), last_open = ? WHERE message_id = ? AND idx = ?
                """, [.real(now.timeIntervalSince1970), .real(now.timeIntervalSince1970), .text(key.id), .int(index)])
        }
    }

    /// The sender reads their own message in the message center: their account
    /// password, no link. A message packed without messageCenter throws notFound.
    public func openAsSender(id: String, password: String, now: Date, output: (ArraySlice<UInt8>) throws -> Void) throws {
        let sender = try db.query("SELECT sender FROM messages WHERE id = ?", [.text(id)]) { $0.text(0) }
        guard let sender = sender.first else { throw EscrowError.notFound }
        let account = try signIn(address: sender, password: password)
        try read(try unlockAsSender(id: id, account: account, now: now), now: now, output: output)
    }

    func streamContent(id: String, key: SecretBytes, output: (ArraySlice<UInt8>) throws -> Void) throws {
        let found: Bool
        do {
            found = try content.read(id: id) { try ContentOpener.open(source: $0, key: key, ad: Array(id.utf8), output: output) }
        } catch let e as EscrowError {
            // Retracted or purged while it was read (rows of a PostgreSQL store go at once).
            if case .corrupt = e { try throwIfGone(id) }
            throw e
        }
        guard found else {
            // Retracted or purged since the checks above.
            try throwIfGone(id)
            throw EscrowError.storage("the sealed content of \(id) is missing")
        }
    }

    private func throwIfGone(_ id: String) throws {
        let state = try db.query("SELECT retracted, purged, expires FROM messages WHERE id = ?", [.text(id)]) {
            (retracted: !$0.isNull(0), purged: $0.int(1) != 0, expires: Date(timeIntervalSince1970: $0.double(2)))
        }.first
        if let state, state.retracted { throw EscrowError.retracted }
        if let state, state.purged { throw EscrowError.expired(state.expires) }
    }

    // MARK: retract, purge

    /// Content file unlinked, wrapped keys and sender_wrap nulled, retracted = now.
    /// Retracting again keeps the first date.
    public func retract(id: String, now: Date) throws {
        try db.transaction {
            try db.run("UPDATE messages SET retracted = coalesce(retracted, ?), sender_wrap = NULL WHERE id = ?",
                       [.real(now.timeIntervalSince1970), .text(id)])
            guard db.changes == 1 else { throw EscrowError.notFound }
            try db.run("UPDATE recipients SET wrapped_key = NULL, wrap_nonce = NULL WHERE message_id = ?", [.text(id)])
            try content.destroyInTransaction(id: id)
        }
        content.destroyAfterCommit(id: id)
    }

    /// Expired messages: content unlinked, wraps nulled, purged = 1 (the row stays so
    /// status and open say "expired"); orphans removed. Returns the count purged.
    @discardableResult
    public func purge(now: Date) throws -> Int {
        let due = try db.transaction { () -> [String] in
            let ids = try db.query("SELECT id FROM messages WHERE purged = 0 AND expires < ?",
                                   [.real(now.timeIntervalSince1970)]) { $0.text(0) }
            for id in ids {
                try db.run("UPDATE messages SET purged = 1, sender_wrap = NULL WHERE id = ?", [.text(id)])
                try db.run("UPDATE recipients SET wrapped_key = NULL, wrap_nonce = NULL WHERE message_id = ?", [.text(id)])
                try content.destroyInTransaction(id: id)
            }
            return ids
        }
        for id in due { content.destroyAfterCommit(id: id) }
        try purgeInbound(now: now)
        try content.removeOrphans(of: self, now: now)
        return due.count
    }

    /// Records whose content must stay: messages neither retracted nor purged, and
    /// held SecureSend messages.
    func liveIDs() throws -> Set<String> {
        Set(try db.query("SELECT id FROM messages WHERE retracted IS NULL AND purged = 0") { $0.text(0) })
            .union(try heldInboundIDs())
    }

    /// Every record's id, live or not.
    func knownIDs() throws -> Set<String> {
        Set(try db.query("SELECT id FROM messages") { $0.text(0) }).union(try allInboundIDs())
    }

    // MARK: status

    /// Newest first.
    public func list() throws -> [MessageStatus] {
        var recipients: [String: [RecipientStatus]] = [:]
        for (id, r) in try db.query(Self.recipientColumns + " ORDER BY message_id, idx", [], Self.recipientStatus) {
            recipients[id, default: []].append(r)
        }
        return try db.query(Self.messageColumns + " ORDER BY created DESC, id") { s in
            Self.messageStatus(s, recipients: recipients[s.text(0)] ?? [])
        }
    }

    public func status(id: String) throws -> MessageStatus {
        let recipients = try db.query(Self.recipientColumns + " WHERE message_id = ? ORDER BY idx", [.text(id)],
                                      Self.recipientStatus).map(\.1).map { r in
            var r = r
            r.replies = try replies(id: id, index: r.index)
            return r
        }
        guard let m = try db.query(Self.messageColumns + " WHERE id = ?", [.text(id)], {
            Self.messageStatus($0, recipients: recipients)
        }).first else { throw EscrowError.notFound }
        return m
    }

    static let messageColumns =
        "SELECT id, sender, created, expires, retracted, purged, content_size FROM messages"
    static let recipientColumns = """
        SELECT message_id, idx, address, mode, question, first_open, last_open, failed_attempts, locked FROM recipients
        """

    static func messageStatus(_ s: any SQLRow, recipients: [RecipientStatus]) -> MessageStatus {
        MessageStatus(id: s.text(0), sender: s.text(1), created: Date(timeIntervalSince1970: s.double(2)),
                      expires: Date(timeIntervalSince1970: s.double(3)),
                      retracted: s.optionalDouble(4).map(Date.init(timeIntervalSince1970:)),
                      purged: s.int(5) != 0, size: s.int(6), recipients: recipients)
    }

    static func recipientStatus(_ s: any SQLRow) -> (String, RecipientStatus) {
        (s.text(0), RecipientStatus(index: s.int(1), address: s.text(2), mode: s.text(3), question: s.optionalText(4),
                                    firstOpen: s.optionalDouble(5).map(Date.init(timeIntervalSince1970:)),
                                    lastOpen: s.optionalDouble(6).map(Date.init(timeIntervalSince1970:)),
                                    failedAttempts: s.int(7), locked: s.int(8) != 0))
    }

    // MARK: receipts

    /// Recipients who opened at least once and whose receipt is not sent yet, in the
    /// order they first opened.
    public func pendingReceipts() throws -> [Receipt] {
        try db.query("""
            SELECT r.message_id, m.sender, r.address, r.idx, r.first_open, m.original_id, m.created
            FROM recipients r JOIN messages m ON m.id = r.message_id
            WHERE r.first_open IS NOT NULL AND r.receipt_sent = 0
            ORDER BY r.first_open, r.message_id, r.idx
            """) { s in
            Receipt(id: s.text(0), sender: s.text(1), recipient: s.text(2), index: s.int(3),
                    opened: Date(timeIntervalSince1970: s.double(4)), originalID: s.optionalText(5),
                    sent: Date(timeIntervalSince1970: s.double(6)))
        }
    }

    /// Claims the receipt for sending: true for the one run that claims it, false
    /// when another run (on this machine or another) has, notFound when there is
    /// no such recipient. A receipt is written only after its claim, so several
    /// `sl-escrow receipts` at once send each exactly once.
    @discardableResult
    public func markReceiptSent(id: String, index: Int) throws -> Bool {
        try db.run("UPDATE recipients SET receipt_sent = 1 WHERE message_id = ? AND idx = ? AND receipt_sent = 0",
                   [.text(id), .int(index)])
        if db.changes == 1 { return true }
        guard try !db.query("SELECT 1 FROM recipients WHERE message_id = ? AND idx = ?", [.text(id), .int(index)], { $0.int(0) })
            .isEmpty else { throw EscrowError.notFound }
        return false
    }

    /// Gives a claimed receipt back (its message could not be written).
    public func unmarkReceiptSent(id: String, index: Int) throws {
        try db.run("UPDATE recipients SET receipt_sent = 0 WHERE message_id = ? AND idx = ?", [.text(id), .int(index)])
    }

    // MARK: accounts

    func publicKey(of address: String) throws -> [UInt8] {
        guard let key = try db.query("SELECT public_key FROM accounts WHERE address = ?",
                                     [.text(address.lowercased())], { $0.blob(0) }).first ?? nil else {
            throw EscrowError.noAccount(address)
        }
        return key
    }

    struct UnlockedAccount {
        var publicKey: [UInt8]
        var secretKey: SecretBytes
        var parameters: KDFParameters
    }

    /// The account's keys, nil when the password is wrong; noAccount when there is none.
    func unlockAccount(_ address: String, password: String) throws -> UnlockedAccount? {
        let rows = try db.query("""
            SELECT public_key, sealed_private_key, nonce, salt, kdf_ops, kdf_mem FROM accounts WHERE address = ?
            """, [.text(address.lowercased())]) { s in
            (pk: s.blob(0) ?? [], sealed: s.blob(1) ?? [], nonce: s.blob(2) ?? [], salt: s.blob(3) ?? [],
             parameters: KDFParameters.stored(ops: s.int64(4), memory: s.int64(5)))
        }
        guard let a = rows.first else { throw EscrowError.noAccount(address) }
        guard a.salt.count == Int(crypto_pwhash_SALTBYTES) else { throw EscrowError.corrupt("account \(address) has a bad salt") }
        let key = try passwordKey(password, salt: a.salt, parameters: a.parameters)
        guard let sk = Wrap.secretboxOpen(a.sealed, nonce: a.nonce, key: key) else { return nil }
        return UnlockedAccount(publicKey: a.pk, secretKey: sk, parameters: a.parameters)
    }

    func sealPrivateKey(_ sk: SecretBytes, password: String, parameters: KDFParameters) throws
        -> (salt: [UInt8], nonce: [UInt8], sealed: [UInt8]) {
        let salt = Sodium.randomBytes(Int(crypto_pwhash_SALTBYTES))
        let key = try passwordKey(password, salt: salt, parameters: parameters)
        let boxed = Wrap.secretbox(sk, key: key)
        return (salt, boxed.nonce, boxed.ciphertext)
    }

    /// A new account: an X25519 key pair whose private key is sealed under the
    /// password. The address is stored lowercased.
    public func createAccount(address: String, password: String, parameters: KDFParameters) throws {
        let lower = address.lowercased()
        if try hasAccount(lower) { throw EscrowError.accountExists(address) }
        let pair = Wrap.keyPair()
        let sealed = try sealPrivateKey(pair.secretKey, password: password, parameters: parameters)
        try db.transaction {
            if try hasAccount(lower) { throw EscrowError.accountExists(address) }
            try db.run("""
                INSERT INTO accounts(address, public_key, sealed_private_key, nonce, salt, kdf_ops, kdf_mem, created)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, [.text(lower), .blob(pair.publicKey), .blob(sealed.sealed), .blob(sealed.nonce), .blob(sealed.salt),
                      .int(Int64(parameters.opsLimit)), .int(parameters.memoryLimit),
                      .real(Date().timeIntervalSince1970)])
        }
    }

    /// Removes the account; messages wrapped for it can no longer be opened.
    public func removeAccount(address: String) throws {
        try db.run("DELETE FROM accounts WHERE address = ?", [.text(address.lowercased())])
        guard db.changes == 1 else { throw EscrowError.noAccount(address) }
    }

    /// Re-seals the same private key under the new password (same KDF parameters), so
    /// every message wrapped for the account stays readable.
    public func changePassword(address: String, old: String, new: String) throws {
        guard let account = try unlockAccount(address, password: old) else { throw EscrowError.wrongPassword }
        let sealed = try sealPrivateKey(account.secretKey, password: new, parameters: account.parameters)
        try db.run("UPDATE accounts SET sealed_private_key = ?, nonce = ?, salt = ? WHERE address = ?",
                   [.blob(sealed.sealed), .blob(sealed.nonce), .blob(sealed.salt), .text(address.lowercased())])
        guard db.changes == 1 else { throw EscrowError.noAccount(address) }
    }

    public func accounts() throws -> [AccountInfo] {
        try db.query("SELECT address, created FROM accounts ORDER BY address") {
            AccountInfo(address: $0.text(0), created: Date(timeIntervalSince1970: $0.double(1)))
        }
    }

    public func hasAccount(_ address: String) throws -> Bool {
        try !db.query("SELECT 1 FROM accounts WHERE address = ?", [.text(address.lowercased())]) { $0.int(0) }.isEmpty
    }

    // MARK: verify

    /// Checks the database (SQLite: PRAGMA integrity_check) and that every message
    /// has its content (of the right size) unless retracted/purged, and every
    /// recipient row its message: a list of problems, empty when sound. Content
    /// files without a row count once older than an hour (younger ones may be a
    /// pack in progress).
    public func verify() throws -> [String] {
        var problems = try db.integrityProblems()
        problems += try db.query("""
            SELECT r.message_id, r.idx FROM recipients r LEFT JOIN messages m ON m.id = r.message_id WHERE m.id IS NULL
            """) { "recipient \($0.int(1)) of \($0.text(0)) has no message" }
        let live = try db.query("SELECT id, content_size FROM messages WHERE retracted IS NULL AND purged = 0") {
            (id: $0.text(0), size: $0.int(1))
        }
        problems += try content.problems(live: live, known: try knownIDs(), now: Date())
        problems += try db.query("""
            SELECT r.message_id, r.idx FROM recipients r JOIN messages m ON m.id = r.message_id
            WHERE m.retracted IS NULL AND m.purged = 0 AND (r.wrapped_key IS NULL OR r.wrap_nonce IS NULL)
            """) { "recipient \($0.int(1)) of \($0.text(0)) has no wrapped key" }
        return problems
    }
}
