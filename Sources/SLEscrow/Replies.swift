import Foundation

/// Secure replies from the portal: how many a recipient sent for a message, and
/// when and how large. A reply is reserved before it is handed on and confirmed
/// after, so parallel replies cannot slip past the limit and a hand-over that
/// failed counts for nothing.
extension EscrowStore {
    /// Reserves a reply for recipient `index` of message `id`: replyLimit when
    /// `maximum` replies are sent or reserved already. The reservation's number.
    public func reserveReply(id: String, index: Int, maximum: Int, now: Date) throws -> Int64 {
        try db.transaction { () -> Int64 in
            let count = try db.query("SELECT count(*) FROM replies WHERE message_id = ? AND idx = ?",
                                     [.text(id), .int(index)]) { $0.int(0) }.first ?? 0
            guard count < maximum else { throw EscrowError.replyLimit(maximum) }
            let row = try db.query("""
                INSERT INTO replies(message_id, idx, sent, size, state) VALUES (?, ?, ?, NULL, 'reserved') RETURNING rowid
                """, [.text(id), .int(index), .real(now.timeIntervalSince1970)]) { $0.int64(0) }
            guard let row = row.first else { throw EscrowError.storage("escrow database: no reservation was made") }
            return row
        }
    }

    /// The reply was handed on: its size and time stay on record.
    public func confirmReply(_ reservation: Int64, size: Int, now: Date) throws {
        try db.run("UPDATE replies SET state = 'sent', size = ?, sent = ? WHERE rowid = ?",
                   [.int(size), .real(now.timeIntervalSince1970), .int(reservation)])
    }

    /// The hand-over failed: the reservation is given back.
    public func cancelReply(_ reservation: Int64) throws {
        try db.run("DELETE FROM replies WHERE rowid = ? AND state = 'reserved'", [.int(reservation)])
    }

    /// The replies sent for recipient `index` of message `id`, oldest first.
    public func replies(id: String, index: Int) throws -> [ReplyRecord] {
        try db.query("SELECT sent, size FROM replies WHERE message_id = ? AND idx = ? AND state = 'sent' ORDER BY sent",
                     [.text(id), .int(index)]) {
            ReplyRecord(sent: Date(timeIntervalSince1970: $0.double(0)), size: $0.int(1))
        }
    }
}

/// One secure reply as the store keeps it: when and how large, nothing of its text.
public struct ReplyRecord: Sendable, Codable, Equatable {
    public let sent: Date
    public let size: Int
}
