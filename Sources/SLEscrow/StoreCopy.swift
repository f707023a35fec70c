import Foundation
import SLMessage

/// Copying a store into an empty PostgreSQL one, for a clinic that outgrows one
/// machine: every table row as it is and every sealed content byte for byte
/// (nothing is decrypted: the content's additional data is its id, which stays).
/// The whole copy is one transaction in the target, so a failed or interrupted
/// copy leaves the target empty and can simply be run again.
extension EscrowStore {
    /// What `copy(to:)` copied.
    public struct CopySummary: Sendable, Equatable {
        public var rows: [String: Int] = [:]
        public var contents = 0
        public var contentBytes = 0
    }

    /// Column types of each table, in the order both schemas list them.
    private enum Column { case text, int, real, blob }
    private static let tables: [(name: String, columns: [(String, Column)])] = [
        ("messages", [("id", .text), ("sender", .text), ("created", .real), ("expires", .real), ("retracted", .real),
                      ("purged", .int), ("content_size", .int), ("sender_wrap", .blob), ("original_id", .text)]),
        ("recipients", [("message_id", .text), ("idx", .int), ("address", .text), ("mode", .text), ("question", .text),
                        ("link_verifier", .blob), ("salt", .blob), ("kdf_ops", .int), ("kdf_mem", .int),
                        ("wrap_nonce", .blob), ("wrapped_key", .blob), ("first_open", .real), ("last_open", .real),
                        ("failed_attempts", .int), ("locked", .int), ("receipt_sent", .int), ("account_wrap", .blob),
                        ("pending_account", .int)]),
        ("accounts", [("address", .text), ("public_key", .blob), ("sealed_private_key", .blob), ("nonce", .blob),
                      ("salt", .blob), ("kdf_ops", .int), ("kdf_mem", .int), ("created", .real)]),
        ("account_tokens", [("verifier", .blob), ("address", .text), ("expires", .real)]),
        ("replies", [("rowid", .int), ("message_id", .text), ("idx", .int), ("sent", .real), ("size", .int), ("state", .text)]),
        ("inbound", [("id", .text), ("sender", .text), ("recipient", .text), ("created", .real), ("expires", .real),
                     ("verifier", .blob), ("wrap_nonce", .blob), ("wrapped_key", .blob), ("size", .int),
                     ("delivered", .real), ("verified_by", .text)]),
        ("tracked", [("rowid", .int), ("verifier", .blob), ("sender", .text), ("recipients", .text), ("message_id", .text),
                     ("method", .text), ("created", .real), ("first_open", .real), ("last_open", .real), ("receipt_sent", .int)]),
    ]

    /// Copies this store into `target`, a PostgreSQL store with no records yet.
    /// `progress` hears of each table and of every hundredth content copied.
    /// Writers should be stopped first: what they change meanwhile may be missed.
    public func copy(to target: EscrowStore, progress: (String) -> Void = { _ in }) throws -> CopySummary {
        guard let targetContent = target.content as? PostgresContentStore else {
            throw StoreCopyRefused(description: "\(target.location): the copy goes into a PostgreSQL store (postgresql://…)")
        }
        let occupied = try Self.tables.filter { table in
            try !target.db.query("SELECT 1 FROM \(table.name) LIMIT 1") { $0.int(0) }.isEmpty
        }
        if let first = occupied.first {
            throw StoreCopyRefused(description: "\(target.location): the target store is not empty (table \(first.name) has rows); copy into a new database")
        }
        let live = try liveIDs()
        return try target.db.transaction {
            var summary = CopySummary()
            for table in Self.tables {
                let names = table.columns.map(\.0).joined(separator: ", ")
                let marks = Array(repeating: "?", count: table.columns.count).joined(separator: ", ")
                // Row by row, straight into the target: memory stays flat however
                // large the store.
                var rows = 0
                _ = try db.query("SELECT \(names) FROM \(table.name)") { row in
                    let values = table.columns.enumerated().map { (i, column) -> SQLValue in
                        let c = Int32(i)
                        if row.isNull(c) { return .null }
                        switch column.1 {
                        case .text: return .text(row.text(c))
                        case .int: return .int(row.int64(c))
                        case .real: return .real(row.double(c))
                        case .blob: return .blob(row.blob(c) ?? [])
                        }
                    }
                    try target.db.run("INSERT INTO \(table.name)(\(names)) VALUES (\(marks))", values)
                    rows += 1
                }
                if table.columns.first?.0 == "rowid" {
                    // Identity columns go on from the highest number copied.
                    _ = try target.db.query("""
                        SELECT setval(pg_get_serial_sequence('sl_escrow.\(table.name)', 'rowid'),
                                      coalesce(max(rowid), 0) + 1, false) FROM \(table.name)
                        """) { $0.int64(0) }
                }
                summary.rows[table.name] = rows
                progress("\(table.name): \(rows) row\(rows == 1 ? "" : "s")")
            }
            for id in live.sorted() {
                let found = try content.read(id: id) { source in
                    summary.contentBytes += try targetContent.insertSealed(id: id, from: source)
                }
                guard found else {
                    throw EscrowError.storage("the sealed content of \(id) is missing; run sl-escrow verify on the source")
                }
                summary.contents += 1
                if summary.contents % 100 == 0 { progress("content: \(summary.contents) of \(live.count)") }
            }
            progress("content: \(summary.contents) of \(live.count), \(summary.contentBytes) bytes")
            return summary
        }
    }
}

extension PostgresContentStore {
    /// Sealed bytes as they are, in MiB rows, inside the caller's transaction; the count.
    func insertSealed(id: String, from source: ContentOpener.Source) throws -> Int {
        let writer = RowWriter(db: db, id: id)
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while case let n = try ContentOpener.readFull(source, into: &buffer), n > 0 { try writer.append(buffer[0..<n]) }
        try writer.flush()
        return writer.total
    }
}

/// A copy that cannot start: the target is not an empty PostgreSQL store (73).
public struct StoreCopyRefused: Error, SysexitReporting, CustomStringConvertible {
    public let description: String
    public var sysexit: Sysexit { .cantCreate }
}
