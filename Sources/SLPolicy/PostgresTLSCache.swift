import Foundation
import SLPostgres

/// The TLS cache in a PostgreSQL database (`tls_cache = postgresql://…`), shared by
/// the probe, classify and delivery machines. Same rules as the file: readers see
/// unexpired rows only, and a merge is one transaction whose upserts decide in SQL
/// whether a row is replaced, so two writers on two machines lose nothing and an
/// unreachable result never replaces a valid reachable verdict, whoever commits last.
///
/// Each load or merge opens its own connection: sl-classify loads once per run, and
/// merges follow probes that take far longer than a connection.
public struct PostgresTLSCache: TLSCacheStore {
    public let uri: String
    public var location: String { PostgresURI.redacted(uri) }

    public init(uri: String) { self.uri = uri }

    /// True for the locations this store takes (postgresql://…, postgres://…).
    public static func isLocation(_ text: String) -> Bool { PostgresURI.isURI(text) }

    /// Version 1: one row per domain, the TLSCacheEntry fields as columns (times in
    /// seconds since the epoch, as in the file), and an index on the expiry.
    public static let schema = PostgresSchema(component: "tls_cache", steps: [[
        """
        CREATE TABLE sl_tls_cache (
            domain text PRIMARY KEY,
            verdict text NOT NULL,
            checked double precision NOT NULL,
            ttl double precision NOT NULL,
            details text,
            mta_sts text)
        """,
        "CREATE INDEX sl_tls_cache_expiry ON sl_tls_cache ((checked + ttl))",
    ]], migrateCommand: "sl-tls-probe --migrate")

    /// Creates or migrates the schema (sl-tls-probe --migrate).
    public func migrate() throws -> (from: Int, to: Int) {
        try Self.schema.migrate(on: try PostgresConnection(uri: uri))
    }

    func connect() throws -> PostgresConnection {
        let db = try PostgresConnection(uri: uri)
        try Self.schema.require(on: db)
        return db
    }

    public func load(now: Date) throws -> TLSCacheSnapshot {
        let db = try connect()
        let rows = try db.execute("""
            SELECT domain, verdict, checked, ttl, details, mta_sts FROM sl_tls_cache
            WHERE checked + ttl > $1
            """, [Self.seconds(now)])
        var entries: [String: TLSCacheEntry] = [:]
        for row in rows {
            guard let domain = row[0], let verdict = row[1].flatMap(TLSVerdict.init(rawValue:)),
                  let checked = row[2].flatMap(Double.init), let ttl = row[3].flatMap(Double.init) else {
                throw ConfigurationError(location, 0, "sl_tls_cache holds a row that is not a TLS verdict (\(row[0] ?? "no domain")); delete it")
            }
            entries[domain] = TLSCacheEntry(verdict: verdict, checked: checked, ttl: ttl, details: row[4], mtaSTS: row[5])
        }
        return TLSCacheSnapshot(entries, now: now)
    }

    /// The rule of `TLSCacheEntry.replaces`, in SQL, so it is decided under the
    /// row's lock: the update is skipped when the new verdict is unreachable ($7)
    /// and the row holds a reachable one still valid at $8.
    static let upsert = """
        INSERT INTO sl_tls_cache AS old (domain, verdict, checked, ttl, details, mta_sts)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (domain) DO UPDATE SET verdict = EXCLUDED.verdict, checked = EXCLUDED.checked,
            ttl = EXCLUDED.ttl, details = EXCLUDED.details, mta_sts = EXCLUDED.mta_sts
        WHERE NOT (EXCLUDED.verdict = $7 AND old.verdict <> $7 AND old.checked + old.ttl > $8)
        """

    public func merge(_ new: [String: TLSCacheEntry], now: Date) throws {
        guard !new.isEmpty else { return }
        let db = try connect()
        let at = Self.seconds(now)
        // Sorted, so that two writers lock shared rows in the same order; a deadlock
        // with the expiry delete is still possible, and is retried whole.
        let sorted = Dictionary(new.map { ($0.key.lowercased(), $0.value) }) { a, b in a.checked >= b.checked ? a : b }
            .sorted { $0.key < $1.key }
        try db.retryingConflicts {
            try db.transaction {
                for (domain, e) in sorted {
                    try db.execute(Self.upsert, [domain, e.verdict.rawValue, Self.seconds(e.checked), Self.seconds(e.ttl),
                                                 e.details, e.mtaSTS, TLSVerdict.unreachable.rawValue, at])
                }
            }
        }
        try db.retryingConflicts {
            try db.execute("DELETE FROM sl_tls_cache WHERE checked + ttl <= $1", [at])
        }
    }

    /// Seconds as float8 text that reads back as the same Double.
    static func seconds(_ date: Date) -> String { seconds(date.timeIntervalSince1970) }
    static func seconds(_ value: Double) -> String { "\(value)" }
}
