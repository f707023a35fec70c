import Foundation

/// What is known about TLS to a domain's MX hosts (the sl-tls-probe vocabulary).
public enum TLSVerdict: String, Sendable, Codable, CaseIterable {
    /// Every MX host publishes DNSSEC-validated TLSA records (RFC 7672) and its
    /// certificate matches them: the strongest verdict, and one WebPKI cannot give
    /// for the self-signed and private-CA certificates most DANE hosts use.
    case dane
    /// Every MX host offers TLS 1.2 or later with a certificate valid for its name
    /// (WebPKI, or an MTA-STS policy in enforce mode).
    case verified
    /// TLS is offered but not verifiable.
    case encrypted
    /// At least one MX host offers no TLS.
    case none
    /// The MX hosts could not be reached or looked up.
    case unreachable

    var rank: Int {
        switch self {
        case .dane: return 4
        case .verified: return 3
        case .encrypted: return 2
        case .none: return 1
        case .unreachable: return 0
        }
    }

    /// True when this verdict is at least as good as `minimum`.
    public func satisfies(_ minimum: TLSVerdict) -> Bool { rank >= minimum.rank }
}

/// A TLS verdict for a domain and where it came from.
public struct TLSFinding: Sendable, Equatable {
    public var verdict: TLSVerdict
    /// "static" (tls_static), "cache" (the TLS cache) or "probe" (sl-classify's
    /// live probe on a cache miss).
    public var source: String
    /// The domain's MTA-STS policy in one line, when it has one (for the audit log).
    public var mtaSTS: String?
    public init(verdict: TLSVerdict, source: String, mtaSTS: String? = nil) {
        self.verdict = verdict; self.source = source; self.mtaSTS = mtaSTS
    }
}

/// Answers "may mail to this domain travel as TLS-only?" The classifier asks a chain of
/// these: static configuration first, then the probe cache. The live probe plugs in here.
public protocol TLSCapabilityProvider: Sendable {
    /// The verdict for `domain` (lowercased ASCII), or nil when this provider has none.
    func finding(for domain: String) -> TLSFinding?
}

/// Verdicts fixed by the administrator (`tls_static` in sl.conf).
public struct StaticTLSCapability: TLSCapabilityProvider {
    let verdicts: [String: TLSVerdict]
    public init(_ verdicts: [String: TLSVerdict]) { self.verdicts = verdicts }
    public func finding(for domain: String) -> TLSFinding? {
        verdicts[domain].map { TLSFinding(verdict: $0, source: "static") }
    }
}

/// One domain's probe result in the TLS cache.
public struct TLSCacheEntry: Codable, Sendable, Equatable {
    public var verdict: TLSVerdict
    /// Seconds since the epoch when the domain was probed.
    public var checked: Double
    /// Seconds the verdict stays valid.
    public var ttl: Double
    public var details: String?
    /// The domain's MTA-STS policy and what it made of the hosts, in one line
    /// (JSON "mta_sts"; absent when the domain has none).
    public var mtaSTS: String?

    enum CodingKeys: String, CodingKey { case verdict, checked, ttl, details, mtaSTS = "mta_sts" }

    public init(verdict: TLSVerdict, checked: Double, ttl: Double, details: String? = nil, mtaSTS: String? = nil) {
        self.verdict = verdict; self.checked = checked; self.ttl = ttl; self.details = details; self.mtaSTS = mtaSTS
    }

    /// Still valid at `now`.
    public func isValid(at now: Date) -> Bool { checked + ttl > now.timeIntervalSince1970 }

    /// The merge rule every cache keeps: a failed probe does not erase what a good
    /// one found, so an unreachable result leaves a still-valid reachable verdict in
    /// place; any other result replaces what was there.
    public func replaces(_ old: TLSCacheEntry?, at now: Date) -> Bool {
        guard verdict == .unreachable, let old, old.isValid(at: now) else { return true }
        return old.verdict == .unreachable
    }
}

/// Where probe verdicts are shared between sl-tls-probe, sl-classify and sl-deliver:
/// a JSON file on one machine (`TLSCacheFile`) or a PostgreSQL table shared by
/// several (`PostgresTLSCache`). Both keep the same rules, so callers do not care
/// which they have.
public protocol TLSCacheStore: Sendable {
    /// Where the cache is, for messages (a path, or a URI without a password).
    var location: String { get }
    /// The entries still valid at `now`.
    func load(now: Date) throws -> TLSCacheSnapshot
    /// Adds or replaces entries, safely beside other writers doing the same: nobody's
    /// results are lost, an unreachable result never replaces a valid reachable
    /// verdict (`TLSCacheEntry.replaces`), and expired entries go.
    func merge(_ entries: [String: TLSCacheEntry], now: Date) throws
}

extension TLSCacheStore {
    public func load() throws -> TLSCacheSnapshot { try load(now: Date()) }
    public func merge(_ entries: [String: TLSCacheEntry]) throws { try merge(entries, now: Date()) }
}

/// The `tls_cache` setting made into a store: a PostgreSQL URI or a file path.
public enum TLSCache {
    public static func store(at location: String) -> any TLSCacheStore {
        PostgresTLSCache.isLocation(location) ? PostgresTLSCache(uri: location) : TLSCacheFile(path: location)
    }
}

/// The verdicts of a cache as loaded: what sl-classify asks.
public struct TLSCacheSnapshot: TLSCapabilityProvider {
    let entries: [String: TLSCacheEntry]
    let now: Date

    public init(_ entries: [String: TLSCacheEntry], now: Date) {
        self.entries = Dictionary(entries.map { ($0.key.lowercased(), $0.value) }) { a, b in a.checked >= b.checked ? a : b }
        self.now = now
    }

    public func finding(for domain: String) -> TLSFinding? {
        entry(for: domain).map { TLSFinding(verdict: $0.verdict, source: "cache", mtaSTS: $0.mtaSTS) }
    }

    /// The unexpired entry for `domain` (lowercased ASCII), if any.
    public func entry(for domain: String) -> TLSCacheEntry? {
        guard let e = entries[domain], e.isValid(at: now) else { return nil }
        return e
    }

    /// The domains with an unexpired entry.
    public var domains: [String] { entries.filter { $0.value.isValid(at: now) }.keys.sorted() }
}

/// The cache file shared with sl-tls-probe (format in sl.conf(5)). Writers replace the
/// file by rename, so a reader sees either the old or the new file, never half of one;
/// entries older than their TTL count as missing.
public struct TLSCacheFile: TLSCacheStore {
    public typealias Entry = TLSCacheEntry
    struct Contents: Codable {
        var version: Int
        var domains: [String: Entry]
    }

    public let path: String
    public var location: String { path }

    public init(path: String) { self.path = path }

    /// Loads the cache; a missing file is an empty cache (nothing probed yet).
    public func load(now: Date) throws -> TLSCacheSnapshot {
        TLSCacheSnapshot(try read(), now: now)
    }

    func read() throws -> [String: Entry] {
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(path, 0, "cannot read the TLS cache file")
        }
        do {
            let c = try JSONDecoder().decode(Contents.self, from: data)
            guard c.version == 1 else { throw ConfigurationError(path, 0, "TLS cache version \(c.version) is not supported") }
            return c.domains
        } catch let e as ConfigurationError {
            throw e
        } catch {
            throw ConfigurationError(path, 0, "the TLS cache is not valid JSON (\(error.localizedDescription)); fix it or delete it (it only caches probe results)")
        }
    }

    /// Merges as SharedStateFile writers do: under the lock the file is re-read so
    /// nobody's results are lost, and the new file replaces the old by rename(2).
    public func merge(_ new: [String: Entry], now: Date) throws {
        try SharedStateFile.locked(path, what: "the TLS cache") {
            var entries = TLSCacheSnapshot(try read(), now: now).entries.filter { $0.value.isValid(at: now) }
            for (domain, entry) in new {
                let key = domain.lowercased()
                if entry.replaces(entries[key], at: now) { entries[key] = entry }
            }
            try SharedStateFile.replace(path, with: try Self.encode(entries), what: "the TLS cache")
        }
    }

    /// Encodes a cache file (used by tests today and by sl-tls-probe).
    public static func encode(_ domains: [String: Entry]) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        return try enc.encode(Contents(version: 1, domains: domains))
    }
}

/// Asks each provider in turn; the first with an answer wins.
public struct TLSCapabilityChain: TLSCapabilityProvider {
    let providers: [any TLSCapabilityProvider]
    public init(_ providers: [any TLSCapabilityProvider]) { self.providers = providers }
    public func finding(for domain: String) -> TLSFinding? {
        for p in providers { if let f = p.finding(for: domain) { return f } }
        return nil
    }
}
