import Foundation
import Testing
import SLPolicy
import SLPostgres
import SLTestPeers

/// The two places a TLS cache can live; every cache test runs against both, since
/// callers are promised the same rules whichever they have.
enum CacheBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case file, postgres
    var testDescription: String { rawValue }

    /// A fresh, empty cache: a file in a scratch directory, or a migrated database
    /// of its own on the test cluster. `cleanup` removes the scratch directory.
    func makeStore() throws -> (store: any TLSCacheStore, cleanup: () -> Void) {
        switch self {
        case .file:
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sl-cache-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            return (TLSCacheFile(path: dir.appendingPathComponent("cache.json").path), { try? FileManager.default.removeItem(at: dir) })
        case .postgres:
            let uri = try PostgresPeer.shared.get().newDatabase()
            let store = PostgresTLSCache(uri: uri)
            _ = try store.migrate()
            return (store, {})
        }
    }

    /// The domains the store holds, expired or not, read around the code under test
    /// (the JSON text; psql).
    func storedDomains(_ store: any TLSCacheStore) throws -> Set<String> {
        switch self {
        case .file:
            let text = try String(contentsOfFile: store.location, encoding: .utf8)
            let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
            return Set((json["domains"] as! [String: Any]).keys)
        case .postgres:
            let peer = try PostgresPeer.shared.get()
            let rows = try peer.psql(PostgresPeer.database(of: store.location), "SELECT domain FROM sl_tls_cache")
            return Set(rows.split(separator: "\n").map(String.init))
        }
    }
}

@Suite struct TLSCacheMergeTests {
    /// Writers in parallel (each merge opens and locks — or connects — on its own,
    /// as separate processes would): nobody's entries are lost, and every read in
    /// between succeeds.
    @Test(arguments: CacheBackend.allCases)
    func parallelMergesLoseNothing(_ backend: CacheBackend) throws {
        let (store, cleanup) = try backend.makeStore()
        defer { cleanup() }
        let now = Date().timeIntervalSince1970
        let failures = NSLock()
        nonisolated(unsafe) var errors: [String] = []
        DispatchQueue.concurrentPerform(iterations: 8) { w in
            for i in 0..<25 {
                do {
                    // Every writer also touches one shared domain: rows locked by others.
                    try store.merge(["w\(w)-\(i).example": .init(verdict: .verified, checked: now, ttl: 3600),
                                     "shared.example": .init(verdict: .encrypted, checked: now, ttl: 3600)])
                    _ = try store.load()
                } catch {
                    failures.lock(); errors.append("\(error)"); failures.unlock()
                }
            }
        }
        #expect(errors.isEmpty, "\(errors.prefix(3))")
        let cache = try store.load()
        for w in 0..<8 { for i in 0..<25 { #expect(cache.entry(for: "w\(w)-\(i).example")?.verdict == .verified) } }
        #expect(cache.domains.count == 8 * 25 + 1)
    }

    @Test(arguments: CacheBackend.allCases)
    func aFailedProbeKeepsAGoodVerdictAndExpiredEntriesGo(_ backend: CacheBackend) throws {
        let (store, cleanup) = try backend.makeStore()
        defer { cleanup() }
        let now = Date().timeIntervalSince1970
        try store.merge(["good.example": .init(verdict: .verified, checked: now, ttl: 3600),
                         "old.example": .init(verdict: .none, checked: now - 7200, ttl: 3600),
                         "gone.example": .init(verdict: .dane, checked: now - 7200, ttl: 3600)])
        try store.merge(["good.example": .init(verdict: .unreachable, checked: now, ttl: 600),
                         "new.example": .init(verdict: .encrypted, checked: now, ttl: 3600),
                         // an expired good verdict does not hold off an unreachable one
                         "gone.example": .init(verdict: .unreachable, checked: now, ttl: 600)])
        #expect(try !backend.storedDomains(store).contains("old.example"))
        let cache = try store.load()
        #expect(cache.entry(for: "good.example")?.verdict == .verified)
        #expect(cache.entry(for: "new.example")?.verdict == .encrypted)
        #expect(cache.entry(for: "gone.example")?.verdict == .unreachable)
        #expect(cache.entry(for: "old.example") == nil)
        // a reachable result does replace an older one
        try store.merge(["good.example": .init(verdict: .none, checked: now, ttl: 3600, details: "no STARTTLS")])
        #expect(try store.load().entry(for: "good.example")?.verdict == TLSVerdict.none)
        #expect(try store.load().entry(for: "good.example")?.details == "no STARTTLS")
        // and an unreachable one replaces an unreachable one
        try store.merge(["gone.example": .init(verdict: .unreachable, checked: now + 1, ttl: 600, details: "later")])
        #expect(try store.load().entry(for: "gone.example")?.details == "later")
    }

    /// Everything an entry carries comes back as written, the times exactly.
    @Test(arguments: CacheBackend.allCases)
    func entriesRoundTrip(_ backend: CacheBackend) throws {
        let (store, cleanup) = try backend.makeStore()
        defer { cleanup() }
        let entry = TLSCacheEntry(verdict: .dane, checked: Date().timeIntervalSince1970 + 0.123456789, ttl: 86_400.5,
                                  details: "TLSv1.3 TLS_AES_256_GCM_SHA384; mx 'quoted' \"x\"", mtaSTS: "enforce, id 1")
        try store.merge(["Mixed.Example": entry])
        #expect(try store.load().entry(for: "mixed.example") == entry)
    }

    @Test(arguments: CacheBackend.allCases)
    func entriesExpire(_ backend: CacheBackend) throws {
        let (store, cleanup) = try backend.makeStore()
        defer { cleanup() }
        let now = Date(timeIntervalSince1970: 1_000_000)
        try store.merge(["fresh.example": .init(verdict: .verified, checked: 999_000, ttl: 3600),
                         "stale.example": .init(verdict: .verified, checked: 990_000, ttl: 3600)], now: Date(timeIntervalSince1970: 990_001))
        let cache = try store.load(now: now)
        #expect(cache.finding(for: "fresh.example")?.verdict == .verified)
        #expect(cache.finding(for: "fresh.example")?.source == "cache")
        #expect(cache.finding(for: "stale.example") == nil)
    }
}

/// What only the PostgreSQL cache has: a schema made by command.
@Suite struct PostgresTLSCacheSchemaTests {
    @Test func aMissingSchemaIsOneLineNamingTheMigrateCommand() throws {
        let uri = try PostgresPeer.shared.get().newDatabase()
        let store = PostgresTLSCache(uri: uri)
        do {
            _ = try store.load()
            Issue.record("loaded a cache without a schema")
        } catch let e as PostgresSchemaError {
            #expect(e.sysexit == .config)
            #expect(e.description.contains("run sl-tls-probe --migrate"))
            #expect(!e.description.contains("\n"))
        }
        #expect(throws: PostgresSchemaError.self) { try store.merge(["a.example": .init(verdict: .verified, checked: 0, ttl: 1)]) }
        // nothing was created by the attempts
        #expect(try PostgresPeer.shared.get().psql(PostgresPeer.database(of: uri),
                                                   "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'sl_%'") == "0\n")
    }

    @Test func anOlderSchemaIsRefusedAndMigrationIsIdempotent() throws {
        let peer = try PostgresPeer.shared.get()
        let uri = try peer.newDatabase()
        let store = PostgresTLSCache(uri: uri)
        #expect(try store.migrate() == (0, PostgresTLSCache.schema.current))
        #expect(try store.migrate() == (PostgresTLSCache.schema.current, PostgresTLSCache.schema.current))
        try peer.psql(PostgresPeer.database(of: uri), "UPDATE sl_schema SET version = 0 WHERE component = 'tls_cache'")
        #expect { try store.load() } throws: { ($0 as? PostgresSchemaError)?.description.contains("run sl-tls-probe --migrate") == true }
        try peer.psql(PostgresPeer.database(of: uri), "UPDATE sl_schema SET version = 99 WHERE component = 'tls_cache'")
        #expect { try store.load() } throws: { ($0 as? PostgresSchemaError)?.description.contains("upgrade sl") == true }
    }

    @Test func anUnreachableServerIsATemporaryFailure() throws {
        let port = try Peers.freePort(type: SOCK_STREAM)
        #expect { try PostgresTLSCache(uri: "postgresql://postgres@127.0.0.1:\(port)/x").load() } throws: {
            ($0 as? PostgresError)?.sysexit == .tempFail
        }
    }

    @Test func passwordsStayOutOfTheURIAndMessages() {
        #expect(PostgresURI.containsPassword("postgresql://sl:secret@db.example/sl"))
        #expect(PostgresURI.containsPassword("postgres://db.example/sl?sslmode=require&password=secret"))
        #expect(!PostgresURI.containsPassword("postgresql://sl@db.example:5432/sl?sslmode=verify-full"))
        #expect(!PostgresURI.redacted("postgresql://sl:secret@db.example/sl?password=secret").contains("secret"))
    }
}
