internal import CSQLite
import Foundation

/// One SQLite connection, closed when released. Every failure becomes an
/// EscrowError.storage with SQLite's own message.
final class SQLiteDatabase: EscrowDatabase {
    let handle: OpaquePointer

    /// `busyTimeout` (milliseconds): how long a statement waits for another
    /// connection's lock before SQLite reports BUSY.
    init(path: String, busyTimeout: Int32) throws {
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil)
        guard rc == SQLITE_OK, let db else {
            let why = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let db { sqlite3_close_v2(db) }
            throw EscrowError.storage("cannot open the escrow database \(path): \(why)")
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, busyTimeout)
    }

    deinit { sqlite3_close_v2(handle) }

    func failure(_ what: String) -> EscrowError {
        .storage("escrow database: \(what): \(String(cString: sqlite3_errmsg(handle)))")
    }

    /// True when the last failure was SQLITE_BUSY (another process holds the lock
    /// longer than the busy timeout, or a lock upgrade could not wait).
    var lastErrorIsBusy: Bool {
        let code = sqlite3_extended_errcode(handle) & 0xff
        return code == SQLITE_BUSY || code == SQLITE_LOCKED
    }

    func execute(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        guard rc == SQLITE_OK else {
            let why = message.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_free(message)
            throw EscrowError.storage("escrow database: \(why)")
        }
    }

    func prepare(_ sql: String) throws -> SQLiteStatement {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else {
            throw failure("preparing a statement")
        }
        return SQLiteStatement(stmt, database: self)
    }

    /// Runs a statement that returns no rows.
    func run(_ sql: String, _ values: [SQLValue]) throws {
        let s = try prepare(sql)
        try s.bind(values)
        while try s.step() {}
    }

    /// Rows of a query, each turned into a value by `row`.
    func query<T>(_ sql: String, _ values: [SQLValue], _ row: (any SQLRow) throws -> T) throws -> [T] {
        let s = try prepare(sql)
        try s.bind(values)
        var out: [T] = []
        while try s.step() { out.append(try row(s)) }
        return out
    }

    var changes: Int { Int(sqlite3_changes(handle)) }

    func integrityProblems() throws -> [String] {
        let integrity = try query("PRAGMA integrity_check") { $0.text(0) }
        return integrity == ["ok"] ? [] : integrity.map { "database: \($0)" }
    }

    /// `body` inside BEGIN IMMEDIATE ... COMMIT: the write lock is taken up front, so a
    /// transaction never fails half way for want of it. Rolled back on any error; the
    /// whole transaction is retried when SQLite still reports BUSY after the busy
    /// timeout (several packers and a purge at once).
    func transaction<R>(_ body: () throws -> R) throws -> R {
        var attempt = 0
        while true {
            attempt += 1
            do {
                try execute("BEGIN IMMEDIATE")
            } catch {
                if lastErrorIsBusy && attempt < 5 { continue }
                throw error
            }
            do {
                let result = try body()
                try execute("COMMIT")
                return result
            } catch {
                let busy = lastErrorIsBusy
                if sqlite3_get_autocommit(handle) == 0 { try? execute("ROLLBACK") }
                if busy && attempt < 5 { continue }
                throw error
            }
        }
    }
}

/// SQLITE_TRANSIENT: SQLite copies the bound value at once.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// A prepared statement, finalised when released.
final class SQLiteStatement: SQLRow {
    private let stmt: OpaquePointer
    private let database: SQLiteDatabase

    fileprivate init(_ stmt: OpaquePointer, database: SQLiteDatabase) {
        self.stmt = stmt
        self.database = database
    }

    deinit { sqlite3_finalize(stmt) }

    func bind(_ values: [SQLValue]) throws {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
        for (i, value) in values.enumerated() {
            let n = Int32(i + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(stmt, n)
            case .int(let v): rc = sqlite3_bind_int64(stmt, n, v)
            case .real(let v): rc = sqlite3_bind_double(stmt, n, v)
            case .text(let v): rc = sqlite3_bind_text(stmt, n, v, -1, transient)
            case .blob(let v):
                // A NULL pointer would bind NULL, not an empty blob.
                if v.isEmpty {
                    rc = sqlite3_bind_zeroblob(stmt, n, 0)
                } else {
                    rc = v.withUnsafeBytes { sqlite3_bind_blob(stmt, n, $0.baseAddress, Int32($0.count), transient) }
                }
            }
            guard rc == SQLITE_OK else { throw database.failure("binding a value") }
        }
    }

    /// Advances to the next row: true when there is one, false when done.
    func step() throws -> Bool {
        switch sqlite3_step(stmt) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw database.failure("executing a statement")
        }
    }

    func isNull(_ i: Int32) -> Bool { sqlite3_column_type(stmt, i) == SQLITE_NULL }
    func int64(_ i: Int32) -> Int64 { sqlite3_column_int64(stmt, i) }
    func double(_ i: Int32) -> Double { sqlite3_column_double(stmt, i) }

    func text(_ i: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, i) else { return "" }
        return String(cString: p)
    }


    func blob(_ i: Int32) -> [UInt8]? {
        if isNull(i) { return nil }
        let n = Int(sqlite3_column_bytes(stmt, i))
        guard n > 0, let p = sqlite3_column_blob(stmt, i) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
}
