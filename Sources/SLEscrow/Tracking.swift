import Foundation
import SLMessage

/// Open tracking of TLS and PKI mail (open_tracking): sl-classify gives each copy
/// it sends by TLS, PGP or S/MIME an image whose address holds a token of its
/// own; the portal records when that address is fetched; `sl-escrow receipts`
/// tells the sender, as it does for escrow opens.
///
/// The store keeps a keyed hash of each token, never the token: whoever steals the
/// store cannot fetch the images and fake opens, nor link a fetched address to a
/// row without the pepper. A fetch shows only that some client loaded the image
/// (an image proxy or a privacy feature may load it unread, many clients never
/// do), so a receipt is a hint, and no open is not proof of anything.
extension EscrowStore {
    /// In the store beside the escrow tables; created by `init` with them.
    static let trackingSchema = """
        CREATE TABLE IF NOT EXISTS tracked(
            verifier BLOB PRIMARY KEY,
            sender TEXT NOT NULL,
            recipients TEXT NOT NULL,
            message_id TEXT,
            method TEXT NOT NULL,
            created REAL NOT NULL,
            first_open REAL,
            last_open REAL,
            receipt_sent INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX IF NOT EXISTS tracked_created ON tracked(created);
        CREATE INDEX IF NOT EXISTS tracked_receipts ON tracked(first_open)
            WHERE first_open IS NOT NULL AND receipt_sent = 0;
        """

    static let trackingTokenBytes = 32

    /// Records a copy about to be sent and returns its token (43 characters of
    /// base64url), which exists nowhere else: the caller puts it into the copy's
    /// image address and forgets it. `recipients`: every recipient of the copy.
    public func track(sender: String, recipients: [String], messageID: String?, method: String, created: Date) throws -> String {
        let token = SecretBytes.random(Self.trackingTokenBytes)
        try db.run("""
            INSERT INTO tracked(verifier, sender, recipients, message_id, method, created) VALUES (?, ?, ?, ?, ?, ?)
            """, [.blob(trackingVerifier(token)), .text(sender), .text(recipients.joined(separator: "\n")),
                  .optionalText(messageID), .text(method), .real(created.timeIntervalSince1970)])
        return Sodium.base64url(token)
    }

    /// A fetch of a token's image: the first and last fetch are recorded. False for
    /// a token that is not one or is not known (nothing is written then); the
    /// portal answers the same either way.
    @discardableResult
    public func recordFetch(token: String, now: Date) throws -> Bool {
        guard let secret = Sodium.fromBase64url(token, count: Self.trackingTokenBytes) else { return false }
        try db.run("UPDATE tracked SET first_open = coalesce(first_open, ?), last_open = ? WHERE verifier = ?",
                   [.real(now.timeIntervalSince1970), .real(now.timeIntervalSince1970), .blob(trackingVerifier(secret))])
        return db.changes == 1
    }

    /// Every tracked copy, newest first.
    public func trackedCopies() throws -> [TrackedCopy] {
        try db.query(Self.trackedColumns + " ORDER BY created DESC, rowid DESC") { Self.trackedCopy($0).copy }
    }

    /// Tracked copies fetched at least once whose receipt is not sent yet, in the
    /// order they were first fetched.
    public func pendingOpenReceipts() throws -> [OpenReceipt] {
        try db.query(Self.trackedColumns + " WHERE first_open IS NOT NULL AND receipt_sent = 0 ORDER BY first_open, rowid",
                     [], Self.trackedCopy)
    }

    /// Claims the receipt for sending, as `markReceiptSent` does: true for the one
    /// run that claims it.
    @discardableResult
    public func markOpenReceiptSent(_ receipt: OpenReceipt) throws -> Bool {
        try db.run("UPDATE tracked SET receipt_sent = 1 WHERE rowid = ? AND receipt_sent = 0", [.int(receipt.row)])
        if db.changes == 1 { return true }
        guard try !db.query("SELECT 1 FROM tracked WHERE rowid = ?", [.int(receipt.row)], { $0.int(0) }).isEmpty else {
            throw EscrowError.notFound
        }
        return false
    }

    /// Gives a claimed receipt back (its message could not be written).
    public func unmarkOpenReceiptSent(_ receipt: OpenReceipt) throws {
        try db.run("UPDATE tracked SET receipt_sent = 0 WHERE rowid = ?", [.int(receipt.row)])
    }

    static let trackedColumns =
        "SELECT rowid, sender, recipients, message_id, method, created, first_open, last_open, receipt_sent FROM tracked"

    static func trackedCopy(_ s: any SQLRow) -> OpenReceipt {
        OpenReceipt(row: s.int64(0), copy: TrackedCopy(
            messageID: s.optionalText(3), sender: s.text(1),
            recipients: s.text(2).split(separator: "\n").map(String.init), method: s.text(4),
            created: Date(timeIntervalSince1970: s.double(5)),
            firstOpen: s.optionalDouble(6).map(Date.init(timeIntervalSince1970:)),
            lastOpen: s.optionalDouble(7).map(Date.init(timeIntervalSince1970:)), receiptSent: s.int(8) != 0))
    }

    /// Keyed with the pepper like the store's other verifiers; a label of its own,
    /// so a token can never stand for a link or a reset secret.
    private func trackingVerifier(_ token: SecretBytes) -> [UInt8] {
        Sodium.hash([.text("sl-escrow tracking v1"), .secret(token)], key: pepperKey).publicCopy()
    }
}

/// A copy sent by TLS, PGP or S/MIME with an open-tracking image, and when the
/// image was fetched.
public struct TrackedCopy: Sendable, Codable, Equatable {
    /// The Message-ID field of the message, if it had one.
    public let messageID: String?
    public let sender: String
    public let recipients: [String]
    /// tls, pgp or smime.
    public let method: String
    public let created: Date
    public let firstOpen: Date?
    public let lastOpen: Date?
    public let receiptSent: Bool
}

/// A tracked copy whose first fetch the sender is to be told of.
public struct OpenReceipt: Sendable {
    let row: Int64
    public let copy: TrackedCopy
}

extension ReadReceipt {
    /// The receipt for a tracked copy's first fetch. It cannot say which of the
    /// copy's recipients opened it (one image per copy), nor that anyone read it.
    public static func message(for copy: TrackedCopy, from: String, date: Date) throws -> Message {
        let recipients = copy.recipients.joined(separator: ", ")
        let opened = copy.firstOpen.map(DeliveryReport.rfc5322Date) ?? "an unknown date"
        return try receipt(to: copy.sender, subject: "Read: message to \(recipients)", text: """
            Your message \(copy.messageID ?? "without a Message-ID") to \(recipients) was opened on \(opened).

            This is a read receipt from open tracking: the copy sent by \(copy.method) loaded its tracking image.
            Some mail clients load images without anyone reading, and many never load them, so this is a hint,
            not proof.

            """, from: from, date: date)
    }
}
