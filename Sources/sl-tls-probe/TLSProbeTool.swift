#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLCommand
import SLMessage
import SLPolicy
import SLTransport

/// sl-tls-probe without its argument parsing.
///
/// Probes each domain like a sending MTA would and prints a verdict per domain
/// (human text, or JSON lines), optionally recording the verdicts in the TLS cache
/// that sl-classify reads.
public struct TLSProbeTool {
    public enum Input: Sendable { case arguments([String]), message }

    public var configurationPath: String?
    public var input: Input = .arguments([])
    public var json = false
    public var warm = false
    /// Write results to the cache (`tls_cache`); --warm implies it.
    public var updateCache = false
    /// Answer from the cache where it has a fresh verdict; probe the rest.
    public var cached = false
    /// --dns, --port, --ca-file, --transport.
    public var destination = TransportOptions()
    public var timeout: Double = 30
    public var concurrency = 20
    public var singleMessage = false

    public init() {}

    static let tool = "sl-tls-probe"

    /// Exit status: 0 when every domain was reached, 75 (EX_TEMPFAIL) when any was
    /// unreachable.
    public func run() throws -> Sysexit {
        let configuration = try ConfigurationLocation.loadIfPresent(configurationPath)
        let installation = configuration?.installation ?? InstallationSettings()
        var options = try LiveTLSCapability.options(from: installation, source: configuration?.source ?? "sl.conf", timeout: timeout)
        options.operationTimeout = min(timeout, 10)
        try options.override(dns: destination.dns, port: destination.port, caFile: destination.caFile, transportMap: destination.transport,
                             mtaSTSPort: destination.mtaSTSPort, dnssecResolver: destination.dnssecResolver)

        let domains = try readDomains()
        guard !domains.isEmpty else { throw UsageError("no domains to probe (give DOMAIN or ADDRESS arguments, - for a list on stdin, or --message)") }
        let cache = installation.transport.tlsCache.map(TLSCache.store(at:))
        if (warm || updateCache || cached) && cache == nil {
            throw ConfigurationError(configuration?.source ?? ConfigurationLocation.defaultPath, 0,
                                     "--warm, --update-cache and --cached need tls_cache in sl.conf")
        }

        // --cached: fresh cache entries answer; only the rest are probed.
        var fromCache: [String: DomainProbe] = [:]
        if cached, let cache {
            let snapshot = try cache.load()
            for d in domains { if let e = snapshot.entry(for: d) { fromCache[d] = DomainProbe(domain: d, cached: e) } }
        }
        let misses = domains.filter { fromCache[$0] == nil }
        let showProgress = misses.count > 1 && Diagnostics.stderrIsTerminal
        let probed = misses.isEmpty ? [] : try TLSProber(options: options).probeAll(misses, concurrency: concurrency) { done, total, r in
            if showProgress {
                let line = "\r\(Self.tool): \(done)/\(total) probed, last \(r.domain): \(r.verdict.rawValue)\u{1B}[K"
                try? FileDescriptorIO.writeAll(2, Array(line.utf8))
                if done == total { try? FileDescriptorIO.writeAll(2, [0x0A]) }
            }
        }
        for r in probed { fromCache[r.domain] = r }
        let results = domains.map { fromCache[$0]! }
        if (warm || updateCache || cached), let cache, !probed.isEmpty {
            var entries: [String: TLSCacheEntry] = [:]
            for r in probed { entries[r.domain] = r.cacheEntry(ttl: installation.transport.tlsCacheTTL) }
            try cache.merge(entries)
        }

        var out = ""
        if warm && !json {
            var counts: [TLSVerdict: Int] = [:]
            for r in results { counts[r.verdict, default: 0] += 1 }
            out = "\(results.count) domains probed into \(cache?.location ?? ""): "
                + TLSVerdict.allCases.map { "\(counts[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", ") + "\n"
        } else if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            for r in results { out += String(decoding: try encoder.encode(r), as: UTF8.self) + "\n" }
        } else {
            for r in results { out += Self.describe(r) }
        }
        try FileDescriptorIO.writeAll(1, Array(out.utf8))
        return results.contains { $0.verdict == TLSVerdict.unreachable } ? .tempFail : .ok
    }

    /// sl-tls-probe --migrate: creates or brings up to date the schema of a TLS
    /// cache in PostgreSQL, which no other command does (readers and writers only
    /// check its version). A file cache needs no schema.
    public static func migrate(configurationPath: String?) throws -> Sysexit {
        let configuration = try ConfigurationLocation.loadIfPresent(configurationPath)
        let source = configuration?.source ?? ConfigurationLocation.defaultPath
        guard let location = configuration?.installation.transport.tlsCache else {
            throw ConfigurationError(source, 0, "--migrate needs tls_cache in sl.conf")
        }
        let line: String
        if PostgresTLSCache.isLocation(location) {
            let store = PostgresTLSCache(uri: location)
            let (from, to) = try store.migrate()
            line = from == to ? "\(store.location): the TLS cache schema is at version \(to); nothing to do\n"
                : "\(store.location): the TLS cache schema migrated from version \(from) to \(to)\n"
        } else {
            line = "\(location): a TLS cache file has no schema; nothing to do\n"
        }
        try FileDescriptorIO.writeAll(1, Array(line.utf8))
        return .ok
    }

    /// Domains from the arguments, a list on stdin, or a message's recipients; in the
    /// order first seen, without duplicates.
    func readDomains() throws -> [String] {
        var items: [String] = []
        switch input {
        case .arguments(let args):
            for a in args {
                if a == "-" { items += try Self.readList() } else { items.append(a) }
            }
        case .message:
            let filter = try StreamFilter(tool: Self.tool)
            if singleMessage { filter.framing = .single }
            var found: [String] = []
            try filter.process { message in
                found += try Self.recipients(of: message)
                return []
            }
            items = found
        }
        var seen = Set<String>()
        var domains: [String] = []
        for item in items {
            let d: String
            do { d = try Self.domain(of: item) } catch let e as UsageError {
                // From a message it is the input that is bad, not the command line.
                if case .message = input { throw MessageError.malformed(e.description) }
                throw e
            }
            if seen.insert(d).inserted { domains.append(d) }
        }
        return domains
    }

    /// The domain of `item`: an address's domain part (IDN to A-labels), or the item.
    static func domain(of item: String) throws -> String {
        var d = item.lowercased()
        if item.contains("@") {
            do { d = try EmailAddress(parsing: item).asciiDomain.lowercased() } catch {
                throw UsageError("\"\(item.prefix(80))\" is not an address: \(error)")
            }
        }
        if d.hasSuffix(".") { d.removeLast() }
        guard DNSResolver.isHostName(d) else { throw UsageError("\"\(item.prefix(80))\" is not a domain name") }
        return d
    }

    /// One domain or address per line; blank lines and # comments skipped.
    static func readList() throws -> [String] {
        var reader = LineReader(FileDescriptorSource(fd: 0), maxPiece: 1_024)
        var out: [String] = []
        while let (line, startsLine) = try reader.next() {
            guard startsLine, line.last == 0x0A || line.count < 1_024 else {
                throw UsageError("a line of the domain list on stdin is longer than 1,024 bytes")
            }
            let text = String(decoding: line, as: UTF8.self)
            let item = (text.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if !item.isEmpty { out.append(item) }
        }
        return out
    }

    /// The envelope recipients if sl-classify wrote them, else To, Cc and Bcc.
    static func recipients(of message: Message) throws -> [String] {
        if let envelope = try Envelope.read(from: message.header) {
            return envelope.recipients.map(\.address)
        }
        return try SendmailEnvelope.headerRecipients(of: message).map(\.address.addrSpec)
    }

    static func describe(_ r: DomainProbe) -> String {
        var s = "\(r.domain): \(r.verdict.rawValue)"
        if let result = r.result { s += " (\(result.rawValue))" }
        if r.source == "cache" { s += " [cached]" }
        if r.hosts.isEmpty, let reason = r.reason { s += " — \(reason)" }
        s += "\n"
        if let sts = r.mtaSTS { s += "  \(sts.summary)\(sts.reason.map { " — \($0)" } ?? "")\n" }
        for h in r.hosts {
            var where_ = h.host
            if let a = h.address { where_ += a.contains(":") ? " [\(a)]:\(h.port)" : " \(a):\(h.port)" }
            if let p = h.preference { where_ += " (MX \(p))" }
            s += "  \(where_): \(h.verdict.rawValue)"
            if let tls = h.tls {
                s += ", \(tls.protocolVersion) \(tls.cipher), certificate " + (tls.verified ? "verified" : "not verified")
            } else if h.address != nil {
                s += h.starttls ? ", STARTTLS offered" : ", no STARTTLS"
            }
            if let reason = h.reason { s += " — \(reason)" }
            s += "\n"
            if let banner = h.banner { s += "    banner: \(banner)\n" }
            if let leaf = h.tls?.chain.first {
                s += "    certificate: \(leaf.subject), issuer \(leaf.issuer), valid until \(leaf.notAfter)\n"
            }
            if let match = h.tls?.dane {
                s += "    dane: TLSA \(match.summary) matched (DNSSEC-validated)\n"
            } else if let dane = h.dane, dane.policy != "not-applicable" {
                s += "    dane: \(dane.policy)\(dane.note.map { " — \($0)" } ?? "")\n"
            }
        }
        return s
    }
}
