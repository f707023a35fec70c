import Foundation
import SLPostgres

/// What the store's SQL needs of a database, so one set of statements serves the
/// embedded SQLite store and a shared PostgreSQL one. The statements are written
/// in the SQL both understand: `?` placeholders (numbered for PostgreSQL by its
/// adapter), CASE rather than two-argument max, RETURNING rather than a last
/// insert id. Every failure is an EscrowError.storage (75: the caller keeps the
/// message and tries again).
protocol EscrowDatabase: AnyObject {
    /// Runs a statement that returns no rows; `changes` then says how many it touched.
    func run(_ sql: String, _ values: [SQLValue]) throws
    /// Rows of a query, each turned into a value by `row`.
    func query<T>(_ sql: String, _ values: [SQLValue], _ row: (any SQLRow) throws -> T) throws -> [T]
    /// Rows the last `run` inserted, changed or deleted.
    var changes: Int { get }
    /// `body` as one transaction that behaves as if it ran alone (SQLite: the write
    /// lock taken up front; PostgreSQL: SERIALIZABLE). Rolled back when it throws,
    /// and run again when the database gave it up for another writer's sake, so
    /// `body` must do nothing outside the database that cannot be done twice.
    func transaction<R>(_ body: () throws -> R) throws -> R
    /// The engine's own consistency check: a line per problem.
    func integrityProblems() throws -> [String]
}

extension EscrowDatabase {
    func run(_ sql: String) throws { try run(sql, []) }
    func query<T>(_ sql: String, _ row: (any SQLRow) throws -> T) throws -> [T] { try query(sql, [], row) }
}

/// One row of a query, read by column number from 0.
protocol SQLRow {
    func isNull(_ i: Int32) -> Bool
    func int64(_ i: Int32) -> Int64
    func double(_ i: Int32) -> Double
    func text(_ i: Int32) -> String
    /// nil for NULL.
    func blob(_ i: Int32) -> [UInt8]?
}

extension SQLRow {
    func int(_ i: Int32) -> Int { Int(int64(i)) }
    func optionalDouble(_ i: Int32) -> Double? { isNull(i) ? nil : double(i) }
    func optionalInt64(_ i: Int32) -> Int64? { isNull(i) ? nil : int64(i) }
    func optionalText(_ i: Int32) -> String? { isNull(i) ? nil : text(i) }
}

enum SQLValue {
    case null
    case int(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    static func int(_ v: Int) -> SQLValue { .int(Int64(v)) }
    static func optionalBlob(_ b: [UInt8]?) -> SQLValue { b.map { .blob($0) } ?? .null }
    static func optionalText(_ t: String?) -> SQLValue { t.map { .text($0) } ?? .null }

    var postgres: PostgresValue {
        switch self {
        case .null: return .null
        case .int(let v): return .int(v)
        case .real(let v): return .double(v)
        case .text(let v): return .text(v)
        case .blob(let v): return .bytes(v)
        }
    }
}

/// The store's SQL on a PostgreSQL connection, its tables in the schema
/// `sl_escrow` (EscrowSchema). Transactions are SERIALIZABLE: whatever several
/// packers, portals and sl-escrow runs on several machines do at once has the
/// outcome of some one-at-a-time order, as SQLite's single writer gives on one
/// machine. The server may give up a transaction for that; it is then run again.
final class PostgresEscrowDatabase: EscrowDatabase {
    let connection: PostgresConnection
    private(set) var changes = 0
    /// The last failure was a serialisation failure or a deadlock.
    private var lastWasConflict = false
    private var numbered: [String: String] = [:]

    static let maximumAttempts = 30

    /// Inside BEGIN … COMMIT: a lost connection then fails the transaction, which
    /// `transaction` runs again on a new one.
    private var inTransaction = false
    /// The last failure was the connection's, not a statement's.
    private var lastWasConnectionLoss = false

    init(uri: String) throws {
        connection = try PostgresConnection(uri: uri)
        try prepareSession()
        try EscrowSchema.postgres.require(on: connection)
    }

    private func prepareSession() throws {
        try connection.execute("SELECT set_config('search_path', 'sl_escrow, public', false)")
    }

    /// A connection the server dropped (a restart, a failover) is made again once,
    /// so a portal that runs for months outlives its database's restarts.
    private func reconnectIfLost() -> Bool {
        guard !connection.isConnected else { return false }
        do {
            try connection.reconnect()
            try prepareSession()
            return true
        } catch {
            return false
        }
    }

    /// `?` becomes $1, $2, …; the statements hold no `?` inside literals.
    private func numberedPlaceholders(_ sql: String) -> String {
        if let done = numbered[sql] { return done }
        var out = ""
        var n = 0
        for c in sql {
            if c == "?" { n += 1; out += "$\(n)" } else { out.append(c) }
        }
        numbered[sql] = out
        return out
    }

    private func perform(_ sql: String, _ values: [SQLValue]) throws -> PostgresResult {
        lastWasConflict = false
        lastWasConnectionLoss = false
        var reconnected = false
        while true {
            do {
                return try connection.query(numberedPlaceholders(sql), values.map(\.postgres))
            } catch let e as PostgresError {
                lastWasConflict = e.isConflict
                lastWasConnectionLoss = e.kind == .connection
                // Outside a transaction a statement runs again on a new connection.
                // Usually the loss is found on sending it (the server dropped an idle
                // connection), so it never ran; if its reply was lost instead, running
                // it twice is harmless for ours (idempotent, or an attempt charged
                // twice: the safe side).
                if lastWasConnectionLoss && !inTransaction && !reconnected && reconnectIfLost() {
                    reconnected = true
                    continue
                }
                throw EscrowError.storage("escrow database \(e)")
            }
        }
    }

    func run(_ sql: String, _ values: [SQLValue]) throws {
        changes = try perform(sql, values).affectedRows
    }

    func query<T>(_ sql: String, _ values: [SQLValue], _ row: (any SQLRow) throws -> T) throws -> [T] {
        let result = try perform(sql, values)
        return try (0..<result.rowCount).map { try row(PostgresRow(result: result, row: $0)) }
    }

    func transaction<R>(_ body: () throws -> R) throws -> R {
        var attempt = 0
        var reconnected = false
        while true {
            attempt += 1
            try run("BEGIN ISOLATION LEVEL SERIALIZABLE")
            inTransaction = true
            defer { inTransaction = false }
            var committing = false
            do {
                let result = try body()
                committing = true
                try run("COMMIT")
                return result
            } catch {
                let conflict = lastWasConflict
                // A connection lost before COMMIT was answered: the server rolled the
                // transaction back, unless COMMIT itself reached it, in which case
                // running it again would do it twice. Only a loss before COMMIT is
                // retried, once, on a new connection.
                let lostBeforeCommit = lastWasConnectionLoss && !committing
                inTransaction = false
                if lostBeforeCommit && !reconnected && reconnectIfLost() {
                    reconnected = true
                    continue
                }
                _ = try? connection.execute("ROLLBACK")
                guard conflict, attempt < Self.maximumAttempts else { throw error }
                // The other writer is finishing; a random pause keeps two retries apart.
                usleep(useconds_t.random(in: 500...(2_000 * useconds_t(min(attempt, 10)))))
            }
        }
    }

    /// PostgreSQL checks its own pages and constraints as it goes; the store's
    /// cross-table checks are the caller's.
    func integrityProblems() throws -> [String] { [] }
}

struct PostgresRow: SQLRow {
    let result: PostgresResult
    let row: Int

    func isNull(_ i: Int32) -> Bool { result.isNull(row, Int(i)) }
    func int64(_ i: Int32) -> Int64 { result.int64(row, Int(i)) }
    func double(_ i: Int32) -> Double { result.double(row, Int(i)) }
    func text(_ i: Int32) -> String { result.text(row, Int(i)) }
    func blob(_ i: Int32) -> [UInt8]? { isNull(i) ? nil : result.data(row, Int(i)) }
}
