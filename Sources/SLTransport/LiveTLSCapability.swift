import Foundation
import SLMessage
import SLPolicy

/// sl-classify's TLS capability on a cache miss: a live probe with a short time
/// limit, its result written to the shared cache (when one is configured) and
/// remembered for the rest of the run.
public final class LiveTLSCapability: TLSCapabilityProvider, @unchecked Sendable {
    let installation: InstallationSettings
    let source: String
    let cache: (any TLSCacheStore)?
    let ttl: Double
    /// Told when the cache cannot be written (the verdict still counts for this run).
    let warn: @Sendable (String) -> Void
    private let lock = NSLock()
    // Made on the first miss: reading the transport table and loading the CA store
    // cost start-up time that a run answered from the cache should not pay, and a
    // broken probe setting should not stop mail that needs no probe.
    private var prober: TLSProber?
    private var resolver: DNSResolver?
    private var seen: [String: TLSFinding] = [:]
    private var unavailable = false

    /// Probes with the settings of `installation` (read from `source`), limited to
    /// `tls_probe_timeout`, and records verdicts in `tls_cache`.
    public init(installation: InstallationSettings, source: String, recordInCache: Bool = true,
                warn: @escaping @Sendable (String) -> Void) {
        self.installation = installation
        self.source = source
        self.cache = recordInCache ? installation.transport.tlsCache.map(TLSCache.store(at:)) : nil
        self.ttl = installation.transport.tlsCacheTTL
        self.warn = warn
    }

    /// The probe settings in a configuration, with `timeout` seconds per domain.
    public static func options(from installation: InstallationSettings, source: String, timeout: Double) throws -> ProbeOptions {
        var o = ProbeOptions()
        do {
            o.dnsServer = try installation.transport.dnsServer.map(DNSServer.init(parsing:))
        } catch {
            throw ConfigurationError(source, 0, "dns_server: \(error)")
        }
        do {
            o.dnssecResolver = try installation.transport.dnssecResolver.map(DNSServer.init(parsing:))
        } catch {
            throw ConfigurationError(source, 0, "dnssec_resolver: \(error)")
        }
        o.transport = try installation.transport.transportMap.map(TransportTable.init(path:)) ?? TransportTable()
        o.port = installation.transport.smtpPort
        o.caFile = installation.transport.tlsCAFile
        o.heloName = installation.hostname ?? localHostName()
        o.domainTimeout = timeout
        o.operationTimeout = min(timeout, 10)
        o.mtaSTS.cachePath = MTASTSOptions.cachePath(besideTLSCache: installation.transport.tlsCache)
        o.mtaSTS.port = installation.transport.mtaSTSPort
        o.mtaSTS.timeout = min(timeout, 15)
        return o
    }

    public func finding(for domain: String) -> TLSFinding? {
        lock.lock(); defer { lock.unlock() }
        if let f = seen[domain] { return f }
        if unavailable { return nil }
        do {
            if prober == nil {
                let options = try Self.options(from: installation, source: source, timeout: installation.transport.tlsProbeTimeout)
                prober = try TLSProber(options: options)
                resolver = try options.makeResolver()
            }
        } catch {
            // No probe possible (bad probe settings, no resolver, no CA store): no
            // verdict, which the decision treats as "not TLS-capable" — never the
            // other way round.
            warn("TLS probe unavailable: \(error)")
            unavailable = true
            return nil
        }
        let result = prober!.probe(domain, resolver: resolver!)
        let finding = TLSFinding(verdict: result.verdict, source: "probe", mtaSTS: result.mtaSTS?.summary)
        seen[domain] = finding
        if let cache {
            // A failed cache write must not stop the mail: the verdict is still good
            // for this run, and the next run probes again.
            do { try cache.merge([domain: result.cacheEntry(ttl: ttl)]) } catch {
                warn("cannot record the TLS verdict for \(domain): \(error)")
            }
        }
        return finding
    }
}

extension DomainProbe {
    /// The cache entry for this result. An unreachable domain is retried soon.
    public func cacheEntry(ttl: Double) -> TLSCacheEntry {
        TLSCacheEntry(verdict: verdict, checked: checked,
                           ttl: verdict == .unreachable ? min(ttl, 600) : ttl,
                           details: reason ?? hosts.first?.tls.map { tls in
                               // A DANE verdict names the TLSA record each host matched.
                               let dane = hosts.compactMap { h in h.tls?.dane.map { "\(h.host) DANE \($0.summary) (DNSSEC-validated)" } }
                               return (["\(tls.protocolVersion) \(tls.cipher)"] + dane).joined(separator: "; ")
                           },
                           mtaSTS: mtaSTS?.summary)
    }
}
