internal import CPQ
import Foundation
import SLMessage

/// One connection to a PostgreSQL server through libpq, owned by this object and
/// closed when it goes. Only parameterised statements: values travel apart from
/// the SQL text (PQexecParams), so no value is ever spliced into a statement.
///
/// Credentials come the way libpq reads them — `~/.pgpass`, `PGPASSFILE`,
/// `PGPASSWORD`, a client certificate — never from sl's argv.
public final class PostgresConnection {
    private let connection: OpaquePointer
    private let api: sl_pq
    /// The connection string with any password taken out, for messages.
    public let location: String

    /// Connects to `uri` (a libpq connection URI, postgresql://… or postgres://…).
    /// A connection that cannot be made is a temporary failure (75): the server
    /// may be back later, and the caller keeps the message meanwhile.
    public init(uri: String, connectTimeout: Int = 10) throws {
        location = PostgresURI.redacted(uri)
        // Whatever the URI came from (sl.conf, or --store on a command line that
        // every user sees in ps), a password does not belong in it.
        guard !PostgresURI.containsPassword(uri) else {
            throw PostgresError(location, "put the database password in ~/.pgpass, PGPASSFILE or PGPASSWORD, not in the URI",
                                kind: .setup)
        }
        var loadError: UnsafePointer<CChar>?
        guard let table = sl_pq_load(&loadError) else {
            throw PostgresError(location, "cannot load libpq: \(loadError.map { String(cString: $0) } ?? "unknown error") (apt-get install libpq5)",
                                kind: .setup)
        }
        let api = table.pointee
        self.api = api
        // Later keywords win over earlier ones, and the URI's own expanded into
        // dbname comes last: a connect_timeout written in the URI beats ours.
        // Notices ("already exists, skipping") would go to stderr otherwise.
        let keys = ["connect_timeout", "application_name", "options", "dbname"]
        let values = [String(connectTimeout), "sl", "-c client_min_messages=warning", uri]
        let conn: OpaquePointer? = keys.withCStrings { k in values.withCStrings { v in api.connectdbParams(k, v, 1) } }
        guard let conn else { throw PostgresError(location, "out of memory connecting to the database", kind: .connection) }
        guard api.status(conn) == CONNECTION_OK else {
            let why = Self.message(api.errorMessage(conn))
            api.finish(conn)
            throw PostgresError(location, "cannot connect: \(why)", kind: PostgresError.isAuthentication(why) ? .authentication : .connection)
        }
        connection = conn
    }

    deinit { api.finish(connection) }

    /// True while the connection to the server is up.
    public var isConnected: Bool { api.status(connection) == CONNECTION_OK }

    /// Connects again with the same parameters (PQreset) after the server dropped
    /// the connection (a restart, a failover, an administrator's
    /// pg_terminate_backend); throws when it cannot. Session settings made with
    /// SET are gone and must be made again.
    public func reconnect() throws {
        api.reset(connection)
        guard isConnected else {
            throw PostgresError(location, "cannot connect again: \(Self.message(api.errorMessage(connection)))", kind: .connection)
        }
    }

    /// Runs one statement with `parameters` as $1, $2, … (text format; nil is
    /// NULL) and returns its rows as text.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [String?] = []) throws -> [[String?]] {
        let raw: OpaquePointer? = parameters.withOptionalCStrings { values in
            api.execParams(connection, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        let owned = try checked(raw)
        let result = owned.handle
        // Values are copied out before PQclear frees the result.
        var rows: [[String?]] = []
        let columns = api.nfields(result)
        for r in 0..<api.ntuples(result) {
            rows.append((0..<columns).map { c in
                api.getisnull(result, r, c) == 1 ? nil : api.getvalue(result, r, c).map { String(cString: $0) }
            })
        }
        return rows
    }

    /// PQexecParams with binary parameters of the given types and binary results.
    func execBinary(_ sql: String, count: Int, types: [Oid], values: [UnsafePointer<CChar>?], lengths: [Int32],
                    formats: [Int32]) -> OpaquePointer? {
        api.execParams(connection, sql, Int32(count), types, values, lengths, formats, 1)
    }

    /// The result when the statement succeeded, else its failure as a PostgresError
    /// (the result freed either way it goes).
    func checked(_ result: OpaquePointer?) throws -> PostgresResult {
        guard let result else {
            throw PostgresError(location, Self.message(api.errorMessage(connection)), kind: .connection)
        }
        let owned = PostgresResult(result, api: api)
        switch api.resultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK:
            return owned
        default:
            let state = api.resultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let why = Self.message(api.resultErrorMessage(result))
            throw PostgresError(location, why, kind: api.status(connection) == CONNECTION_OK ? .statement : .connection, sqlState: state)
        }
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when
    /// it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            _ = try? execute("ROLLBACK")
            throw error
        }
    }

    /// Runs `body` (usually a transaction) again when the server chose it as the
    /// victim of a deadlock or a serialisation conflict with another writer: the
    /// other writer has finished by then, and nothing of ours was kept.
    @discardableResult
    public func retryingConflicts<T>(attempts: Int = 5, _ body: () throws -> T) throws -> T {
        var attempt = 1
        while true {
            do { return try body() } catch let e as PostgresError where e.isConflict && attempt < attempts {
                attempt += 1
                usleep(useconds_t.random(in: 1_000...20_000))
            }
        }
    }

    /// libpq's messages end in a newline and may run over several lines; ours are one.
    static func message(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "unknown error" }
        return String(cString: text).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: "; ")
    }
}

/// A PostgreSQL failure in one line, with the exit it means.
public struct PostgresError: SysexitReporting, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// No connection (server down, network): may succeed later.
        case connection
        /// The server refused our credentials: a setting to put right.
        case authentication
        /// The server refused a statement.
        case statement
        /// libpq itself cannot be loaded: an installation to put right.
        case setup
    }
    public let location: String
    public let message: String
    public let kind: Kind
    /// The SQLSTATE, when the server sent one.
    public let sqlState: String?

    public init(_ location: String, _ message: String, kind: Kind, sqlState: String? = nil) {
        self.location = location; self.message = message; self.kind = kind; self.sqlState = sqlState
    }

    public var description: String { "\(location): \(message)" }

    /// 40P01 deadlock, 40001 serialisation failure: another writer won; try again.
    public var isConflict: Bool { sqlState == "40P01" || sqlState == "40001" }

    /// Refused credentials and privileges are configuration (78); anything else
    /// may pass when the server or the network is back (75).
    public var sysexit: Sysexit {
        if kind == .authentication || kind == .setup { return .config }
        if let s = sqlState, s.hasPrefix("28") || s == "42501" { return .config }
        return .tempFail
    }

    static func isAuthentication(_ why: String) -> Bool {
        why.contains("password authentication failed") || why.contains("no password supplied")
            || why.contains("no pg_hba.conf entry") || why.contains("authentication failed")
    }
}

/// What sl accepts as a PostgreSQL location in its configuration.
public enum PostgresURI {
    /// True for libpq connection URIs (postgresql://… and postgres://…).
    public static func isURI(_ text: String) -> Bool {
        let lower = text.lowercased()
        return lower.hasPrefix("postgresql://") || lower.hasPrefix("postgres://")
    }

    /// True when the URI carries a password (user:secret@ or password=): sl.conf is
    /// read by several programs and users, and messages name the location, so the
    /// password belongs in ~/.pgpass, PGPASSFILE or PGPASSWORD instead.
    public static func containsPassword(_ uri: String) -> Bool {
        guard let scheme = uri.range(of: "://") else { return false }
        let rest = uri[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        if let at = authority.lastIndex(of: "@"), authority[..<at].contains(":") { return true }
        guard let q = rest.firstIndex(of: "?") else { return false }
        return rest[rest.index(after: q)...].split(separator: "&").contains { $0.lowercased().hasPrefix("password=") }
    }

    /// The URI without a password, for messages.
    public static func redacted(_ uri: String) -> String {
        guard containsPassword(uri), let scheme = uri.range(of: "://") else { return uri }
        let rest = uri[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        var host = String(authority)
        if let at = authority.lastIndex(of: "@") {
            let user = authority[..<at].prefix { $0 != ":" }
            host = user + ":…@" + authority[authority.index(after: at)...]
        }
        let tail = rest.dropFirst(authority.count)
        let path = tail.prefix { $0 != "?" }
        let query = tail.dropFirst(path.count).dropFirst().split(separator: "&")
            .map { $0.lowercased().hasPrefix("password=") ? "password=…" : String($0) }
        return String(uri[..<scheme.upperBound]) + host + path + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
    }
}

extension Array where Element == String {
    /// C strings for a `const char *const *` argument, alive during `body`.
    func withCStrings<R>(_ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        map(Optional.some).withOptionalCStrings(body)
    }
}

extension Array where Element == String? {
    /// C strings (nil stays NULL) with a NULL at the end, alive during `body`.
    func withOptionalCStrings<R>(_ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let copies: [UnsafeMutablePointer<CChar>?] = map { $0.map { strdup($0) } }
        defer { for c in copies { free(c) } }
        let pointers = copies.map { $0.map { UnsafePointer($0) } } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
