// Where a domain's MTA-STS policy comes from (RFC 8461 3 and 5.1): the cache, the
// `_mta-sts` TXT record and the policy host, asked through sl's own DNS layer so
// that one resolver decides where mail and policy fetches go.
import Foundation
import SLHTTPS
import SLMessage
import SLPolicy

/// How policies are found and kept (sl.conf: tls_cache's directory, mta_sts_port).
public struct MTASTSOptions: Sendable {
    /// The policy cache file; nil keeps policies for this run only.
    public var cachePath: String?
    /// The HTTPS port of mta-sts.DOMAIN (443; tests use others).
    public var port: UInt16 = 443
    /// Seconds for one policy fetch, connect included.
    public var timeout: Double = 15

    public init() {}

    /// The policy cache beside the TLS cache file: `mta-sts.json` in its directory.
    /// A TLS cache in PostgreSQL has no directory: policies are then kept per run,
    /// as without tls_cache (a database table for them is for later).
    public static func cachePath(besideTLSCache tlsCache: String?) -> String? {
        guard let tlsCache, !PostgresTLSCache.isLocation(tlsCache) else { return nil }
        return ((tlsCache as NSString).deletingLastPathComponent as NSString).appendingPathComponent("mta-sts.json")
    }
}

/// What is known about a domain's policy, for the probe's evidence and the
/// deliverer's enforcement.
public struct STSLookup: Sendable, Equatable {
    /// The policy in force: freshly fetched, or cached and unexpired. nil: none.
    public var policy: STSPolicy?
    public var id: String?
    /// The policy came from the cache (not fetched on this lookup).
    public var fromCache = false
    /// A TXT record was seen but no policy could be fetched or read (RFC 8460 type).
    public var problem: TLSResultType?
    public var problemReason: String?
}

/// The probe's and the audit's record of the policy (sl-tls-probe --json "mta_sts").
public struct STSEvidence: Codable, Sendable, Equatable {
    public var id: String?
    public var mode: STSPolicy.Mode?
    public var mx: [String]?
    public var maxAge: Int?
    /// The policy came from the cache rather than a fetch in this run.
    public var cached: Bool
    /// Why no (new) policy could be had, as an RFC 8460 result type, and in words.
    public var result: TLSResultType?
    public var reason: String?
    /// MX hosts in use that the policy refuses ("host: why"); with mode testing
    /// only reported.
    public var failures: [String]?

    public init(_ lookup: STSLookup) {
        id = lookup.id
        mode = lookup.policy?.mode
        mx = lookup.policy?.mx
        maxAge = lookup.policy?.maxAge
        cached = lookup.fromCache
        result = lookup.problem
        reason = lookup.problemReason
    }

    /// One line for the TLS cache entry and the audit log.
    public var summary: String {
        var s = "MTA-STS"
        if let mode { s += " \(mode.rawValue)" } else { s += " no policy" }
        if let id { s += " id=\(id)" }
        if let mx, !mx.isEmpty { s += " mx=\(mx.joined(separator: ","))" }
        if cached { s += " (cached)" }
        if let result { s += " [\(result.rawValue)]" }
        if let failures, !failures.isEmpty { s += "; refuses \(failures.joined(separator: "; "))" }
        return s
    }
}

/// The policy cache file (JSON; format in sl.conf(5)). Written as the TLS cache
/// is (SharedStateFile), expired entries dropped.
public struct STSCacheFile {
    public struct Entry: Codable, Sendable, Equatable {
        public var id: String
        /// Seconds since the epoch when the policy was fetched.
        public var fetched: Double
        public var policy: STSPolicy

        public init(id: String, fetched: Double, policy: STSPolicy) { self.id = id; self.fetched = fetched; self.policy = policy }
        public func isFresh(at now: Double) -> Bool { fetched + Double(policy.maxAge) > now }
    }
    struct Contents: Codable {
        var version: Int
        var domains: [String: Entry]
    }

    public let entries: [String: Entry]

    /// A missing file is an empty cache.
    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { entries = [:]; return }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(path, 0, "cannot read the MTA-STS policy cache")
        }
        let contents: Contents
        do { contents = try JSONDecoder().decode(Contents.self, from: data) } catch {
            throw ConfigurationError(path, 0, "the MTA-STS policy cache is not valid JSON; fix it or delete it (policies are fetched again)")
        }
        guard contents.version == 1 else { throw ConfigurationError(path, 0, "MTA-STS cache version \(contents.version) is not supported") }
        entries = contents.domains
    }

    /// Records freshly fetched policies. Only a fetched policy is ever written:
    /// a failed fetch leaves the cached one alone (RFC 8461 5.1).
    public static func merge(_ new: [String: Entry], into path: String, now: Double = Date().timeIntervalSince1970) throws {
        try SharedStateFile.locked(path, what: "the MTA-STS policy cache") {
            var entries = try STSCacheFile(path: path).entries.filter { $0.value.isFresh(at: now) }
            for (domain, entry) in new { entries[domain.lowercased()] = entry }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            try SharedStateFile.replace(path, with: try encoder.encode(Contents(version: 1, domains: entries)), what: "the MTA-STS policy cache")
        }
    }
}

/// Finds each domain's policy: the cache first, then the TXT record, and a fetch
/// only when the record's id differs from the cached policy's (or nothing is
/// cached). Shared by the threads of a run; the cache is read once.
public final class MTASTSPolicies: @unchecked Sendable {
    public let options: MTASTSOptions
    let caFile: String?
    let warn: @Sendable (String) -> Void
    private let lock = NSLock()
    private var cache: [String: STSCacheFile.Entry]?
    /// Policies fetched since the last `flush`, written to the cache file together:
    /// a locked read, merge and rename of the whole file per policy made a cold run
    /// over many domains quadratic and one at a time (bench/tls-probe).
    private var fetched: [String: STSCacheFile.Entry] = [:]
    /// Each domain's last answer, reused for `answerLifetime` seconds: sl-deliver
    /// asks once per connection to a domain in every round (a round every few
    /// seconds), and one TXT lookup a minute is plenty to notice a new policy id.
    private var answers: [String: (at: Double, lookup: STSLookup)] = [:]
    static let answerLifetime: Double = 60

    public init(options: MTASTSOptions, caFile: String?, warn: @escaping @Sendable (String) -> Void = { _ in }) {
        self.options = options
        self.caFile = caFile
        self.warn = warn
    }

    func cached(_ domain: String, now: Double) -> STSCacheFile.Entry? {
        lock.lock(); defer { lock.unlock() }
        if cache == nil {
            do { cache = try options.cachePath.map { try STSCacheFile(path: $0).entries } ?? [:] } catch {
                // An unreadable cache is not a reason to stop mail; policies are fetched again.
                warn("\(error)")
                cache = [:]
            }
        }
        guard let e = cache?[domain], e.isFresh(at: now) else { return nil }
        return e
    }

    func remember(_ domain: String, _ entry: STSCacheFile.Entry) {
        lock.lock()
        cache?[domain] = entry
        fetched[domain] = entry
        lock.unlock()
    }

    /// Writes the policies fetched since the last call into the cache file, in one
    /// merge. Called when a probe or a delivery round is done; a policy not written
    /// (a crash before) is only fetched again.
    public func flush() {
        lock.lock(); let new = fetched; fetched = [:]; lock.unlock()
        guard !new.isEmpty, let path = options.cachePath else { return }
        do { try STSCacheFile.merge(new, into: path) } catch {
            warn("cannot record the MTA-STS policies of \(new.keys.sorted().joined(separator: ", ")): \(error)")
        }
    }

    /// The policy in force for `domain` (lowercased ASCII). Never throws: trouble
    /// becomes the lookup's `problem`, and the cached policy, if any, stays in force.
    public func lookup(_ domain: String, resolver: DNSResolver, now: Double = Date().timeIntervalSince1970) -> STSLookup {
        lock.lock()
        if let a = answers[domain], now - a.at < Self.answerLifetime, now >= a.at { lock.unlock(); return a.lookup }
        lock.unlock()
        let answer = lookupNow(domain, resolver: resolver, now: now)
        lock.lock(); answers[domain] = (now, answer); lock.unlock()
        return answer
    }

    private func lookupNow(_ domain: String, resolver: DNSResolver, now: Double) -> STSLookup {
        let cached = cached(domain, now: now)
        var kept = STSLookup(policy: cached?.policy, id: cached?.id, fromCache: cached != nil)
        let record: STSRecord?
        do {
            record = try resolver.txt("_mta-sts." + domain).flatMap(STSRecord.discover(in:))
        } catch DNSError.noSuchDomain {
            record = nil
        } catch {
            // Without an answer nothing is known to have changed (3.1, 10.2).
            return kept
        }
        // No record: a cached policy stays in force until it expires (10.2).
        guard let record else { return kept }
        if let cached, cached.id == record.id { return kept }
        do {
            let policy = try fetch(domain, resolver: resolver)
            let entry = STSCacheFile.Entry(id: record.id, fetched: now, policy: policy)
            remember(domain, entry)
            return STSLookup(policy: policy, id: record.id, fromCache: false)
        } catch let e as STSFetchError {
            // Only a fetched policy replaces a cached one (3.3, 5.1).
            kept.problem = e.result
            kept.problemReason = e.description
            return kept
        } catch {
            kept.problem = .stsPolicyFetchError
            kept.problemReason = "\(error)"
            return kept
        }
    }

    /// GETs https://mta-sts.DOMAIN/.well-known/mta-sts.txt at the addresses our
    /// resolver gives for mta-sts.DOMAIN, the certificate verified for that name.
    func fetch(_ domain: String, resolver: DNSResolver) throws -> STSPolicy {
        let host = "mta-sts." + domain
        let addresses: [String]
        do { addresses = try resolver.addresses(host) } catch {
            throw STSFetchError(result: .stsPolicyFetchError, description: "\(host): \(error)")
        }
        guard !addresses.isEmpty else { throw STSFetchError(result: .stsPolicyFetchError, description: "\(host) has no address") }
        let port = options.port
        let url = "https://\(host)\(port == 443 ? "" : ":\(port)")/.well-known/mta-sts.txt"
        let pinned = "\(host):\(port):" + addresses.map { $0.contains(":") ? "[\($0)]" : $0 }.joined(separator: ",")
        let https = HTTPSOptions(resolve: [pinned], caFile: caFile, timeoutSeconds: Int(max(1, options.timeout).rounded(.up)),
                                 maximumSize: STSPolicy.maximumSize, userAgent: "sl (MTA-STS)", ignoresProxies: true)
        let reply: HTTPSReply?
        do { reply = try HTTPSClient.fetch(url, options: https) } catch let e as HTTPSError {
            switch e.kind {
            case .certificate: throw STSFetchError(result: .stsWebPKIInvalid, description: e.description)
            case .tooLarge: throw STSFetchError(result: .stsPolicyInvalid, description: e.description)
            case .usage, .transfer: throw STSFetchError(result: .stsPolicyFetchError, description: e.description)
            }
        }
        guard let reply else { throw STSFetchError(result: .stsPolicyFetchError, description: "\(host) does not resolve") }
        // 3.3: only 200 counts; a redirect is not followed.
        guard reply.status == 200 else {
            throw STSFetchError(result: .stsPolicyFetchError, description: "\(url) answered HTTP \(reply.status)\((300..<400).contains(reply.status) ? " (a redirect, which is not followed)" : "")")
        }
        let type = reply.contentType?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard type == "text/plain" else {
            throw STSFetchError(result: .stsPolicyInvalid, description: "\(url) is \(reply.contentType.map { "\"\($0.prefix(60))\"" } ?? "without a media type"), not text/plain")
        }
        do { return try STSPolicy(parsing: reply.body) } catch {
            throw STSFetchError(result: .stsPolicyInvalid, description: "\(url): \(error)")
        }
    }
}

/// Why a policy fetch gave no policy: an RFC 8460 result type and a line.
struct STSFetchError: SysexitReporting, CustomStringConvertible {
    let result: TLSResultType
    let description: String
    /// The policy host's trouble, for now: try again later.
    var sysexit: Sysexit { .tempFail }
}
