import Foundation
import SLMessage
import SLPolicy

/// How to probe: where DNS answers come from, where to connect, how long to wait.
public struct ProbeOptions: Sendable {
    public var dnsServer: DNSServer?
    /// The validating resolver whose AD bit is trusted (`dnssec_resolver`,
    /// `--dnssec-resolver`); it then answers every lookup. Without it, no DANE.
    public var dnssecResolver: DNSServer?
    public var transport = TransportTable()
    /// The SMTP port for MX hosts (25; tests and relays use others).
    public var port: UInt16 = 25
    /// PEM trust anchors; nil: the system CA store.
    public var caFile: String?
    /// Name sent in EHLO (`hostname` in sl.conf, else gethostname(2)).
    public var heloName = localHostName()
    /// Seconds for the whole domain: DNS, every MX host, every handshake.
    public var domainTimeout: Double = 30
    /// Seconds for one connect, one read or one write.
    public var operationTimeout: Double = 10
    /// MX hosts probed per domain, best preference first (Postfix's smtp_mx_address_limit spirit).
    public var maximumHosts = 5
    /// MTA-STS policies (RFC 8461): where they are cached, the policy hosts' port.
    public var mtaSTS = MTASTSOptions()

    public init() {}

    /// A resolver whose two attempts fit in a quarter of the domain's time limit,
    /// so that DNS cannot use up the time the handshakes need.
    public func makeResolver() throws -> DNSResolver {
        try DNSResolver(server: dnssecResolver ?? dnsServer, timeout: Int(max(1, min(5, domainTimeout / 8)).rounded(.up)), attempts: 2,
                        validating: dnssecResolver != nil)
    }
}

/// What one MX host showed.
public struct HostProbe: Codable, Sendable, Equatable {
    public var host: String
    public var preference: Int?
    public var address: String?
    public var port: Int
    public var banner: String?
    public var esmtp = false
    public var starttls = false
    public var tls: TLSDetails?
    public var verdict: TLSVerdict
    /// RFC 8460 result type, or nil.
    public var result: TLSResultType?
    /// Why the host is not verified, in words.
    public var reason: String?
    /// What DANE (RFC 7672) says about the host, and why.
    public var dane: DANEEvidence?
}

/// The verdict for one domain, with the evidence.
public struct DomainProbe: Codable, Sendable, Equatable {
    public var domain: String
    public var verdict: TLSVerdict
    public var result: TLSResultType?
    public var reason: String?
    public var hosts: [HostProbe]
    /// Seconds since the epoch when the probe ran.
    public var checked: Double
    /// Seconds the probe took.
    public var elapsed: Double
    /// "probe", or "cache" when the verdict came from the TLS cache (--cached).
    public var source = "probe"
    /// The domain's MTA-STS policy and what it made of the hosts (MTASTSVerdict.swift).
    public var mtaSTS: STSEvidence? = nil
}

extension DomainProbe {
    /// A verdict from the cache, without host details (the cache keeps none).
    public init(domain: String, cached entry: TLSCacheFile.Entry) {
        self.init(domain: domain, verdict: entry.verdict, result: nil, reason: entry.details, hosts: [],
                  checked: entry.checked, elapsed: 0, source: "cache")
    }
}

/// Decides per domain whether mail may travel as TLS-only, by doing what a sending
/// MTA does: MX lookup (or the transport table), connect, EHLO, STARTTLS, handshake,
/// verify. Never throws: every failure becomes a verdict with a reason.
public final class TLSProber: @unchecked Sendable {
    public let options: ProbeOptions
    let context: TLSClientContext
    let policies: MTASTSPolicies

    public init(options: ProbeOptions) throws {
        self.options = options
        context = try TLSClientContext(caFile: options.caFile)
        policies = MTASTSPolicies(options: options.mtaSTS, caFile: options.caFile)
    }

    /// Probes one domain. `resolver` is the calling thread's own.
    public func probe(_ domain: String, resolver: DNSResolver) -> DomainProbe {
        defer { policies.flush() }
        return probeOne(domain, resolver: resolver)
    }

    func probeOne(_ domain: String, resolver: DNSResolver) -> DomainProbe {
        let started = Deadline.now()
        let checked = Date().timeIntervalSince1970
        let limit = Deadline(seconds: options.domainTimeout)
        let domain = domain.lowercased()
        func done(_ verdict: TLSVerdict, _ result: TLSResultType?, _ reason: String?, _ hosts: [HostProbe]) -> DomainProbe {
            DomainProbe(domain: domain, verdict: verdict, result: result, reason: reason, hosts: hosts,
                        checked: checked, elapsed: Double(Deadline.now() - started) / 1e9)
        }
        guard DNSResolver.isHostName(domain) else {
            return done(.unreachable, nil, "not a domain name", [])
        }

        let targets: [MailHost]
        do {
            targets = try MailHost.hosts(for: domain, transport: options.transport, port: options.port,
                                         resolver: resolver, limit: options.maximumHosts)
        } catch NullMXError.nullMX {
            return done(.unreachable, nil, "the domain accepts no mail (null MX, RFC 7505)", [])
        } catch {
            return done(.unreachable, nil, "DNS: \(error)", [])
        }

        var hosts: [HostProbe] = []
        for t in targets {
            if limit.hasPassed {
                hosts.append(HostProbe(host: t.name, preference: t.preference, port: Int(t.port),
                                       verdict: .unreachable, reason: "not probed: the domain's time limit ran out"))
                continue
            }
            hosts.append(probeHost(t, resolver: resolver, limit: limit))
        }

        // Hosts that answered SMTP are in use; the domain is as good as the worst of them.
        let inUse = hosts.filter { $0.verdict != .unreachable }
        // min under "strictly worse than": the worst host decides.
        guard let worst = inUse.min(by: { !$0.verdict.satisfies($1.verdict) }) else {
            let first = hosts.first
            return done(.unreachable, nil, first?.reason ?? "no mail host", hosts)
        }
        return applyingMTASTS(done(worst.verdict, worst.result, worst.reason.map { "\(worst.host): \($0)" }, hosts), resolver: resolver)
    }

    func probeHost(_ target: MailHost, resolver: DNSResolver, limit: Deadline) -> HostProbe {
        let name = target.name, port = target.port
        var h = HostProbe(host: name, preference: target.preference, port: Int(port), verdict: .unreachable)
        let addresses: [String]
        let dane: DANEPolicy
        do {
            let resolved = try target.resolve(resolver)
            addresses = resolved.addresses
            dane = addresses.isEmpty ? .notApplicable("no address") : DANEPolicy.forHost(target, addressesSecure: resolved.secure, resolver: resolver)
            h.dane = dane.evidence
        } catch {
            h.reason = "DNS: \(error)"
            return h
        }
        guard !addresses.isEmpty else {
            h.reason = "\(name) has no address"
            return h
        }
        // The first address that greets is the one in use, as for a sending MTA.
        var connection: SMTPConnection?
        var lastError = ""
        for address in addresses {
            do {
                let c = try SMTPConnection(address: address, port: port, connectTimeout: options.operationTimeout,
                                           timeout: options.operationTimeout, limit: limit)
                h.address = address
                h.banner = try c.greeting().lines.first
                connection = c
                break
            } catch {
                lastError = "\(error)"
            }
        }
        guard let connection else {
            h.reason = lastError
            return h
        }
        defer { connection.quit() }

        // From here on the host is in use: anything short of verified TLS counts against it.
        h.verdict = .none
        if case .lookupFailed(let why) = dane {
            // RFC 7672 2.2: records an attacker may be hiding make the host unusable.
            h.result = .dnssecInvalid
            h.reason = why
            return h
        }
        do {
            let ehlo = try connection.ehlo(options.heloName)
            h.esmtp = ehlo.code == 250
            h.starttls = connection.extensions["STARTTLS"] != nil
            guard h.starttls else {
                h.result = .starttlsNotSupported
                h.reason = h.esmtp ? "STARTTLS not offered" : "no ESMTP (EHLO answered \(ehlo.code))"
                return h
            }
            let tls = try connection.startTLS(context: context, serverName: name, verifyName: name, dane: dane.authentication)
            h.tls = tls
            if let judged = dane.judge(tls) {
                (h.verdict, h.result, h.reason) = judged
            } else if !tls.verified {
                h.verdict = .encrypted
                h.result = tls.failure
                h.reason = tls.failureDetail
            } else if !tls.modernProtocol {
                h.verdict = .encrypted
                h.result = .validationFailure
                h.reason = "\(tls.protocolVersion) is older than TLS 1.2"
            } else {
                h.verdict = .verified
            }
            // EHLO again over TLS, as a sender would; a server that breaks here is not usable.
            let again = try connection.ehlo(options.heloName)
            if again.code != 250 {
                h.verdict = .none
                h.result = .validationFailure
                h.reason = "EHLO after STARTTLS answered \(again.text.prefix(120))"
            }
        } catch let refused as STARTTLSRefused {
            h.result = .starttlsNotSupported
            h.reason = refused.description
        } catch {
            // A failure anywhere after the greeting (injection, handshake, a server
            // that stops answering) leaves this host without usable TLS.
            h.verdict = .none
            h.result = h.result ?? .validationFailure
            h.reason = "\(error)"
        }
        return h
    }

    /// Probes `domains` with up to `concurrency` at once, each on a thread of its own
    /// with its own resolver. Results come back in the order given. `progress` is
    /// called (from worker threads, serialised) after each domain.
    public func probeAll(_ domains: [String], concurrency: Int,
                         progress: ((Int, Int, DomainProbe) -> Void)? = nil) throws -> [DomainProbe] {
        defer { policies.flush() }
        return try WorkerThreads.map(count: domains.count, threads: concurrency, state: options.makeResolver,
                                     job: { resolver, i in self.probeOne(domains[i], resolver: resolver) },
                                     finished: progress.map { report in { done, r in report(done, domains.count, r) } })
    }
}

extension ProbeOptions {
    /// The command line's --dns, --port, --ca-file and --transport, over what
    /// sl.conf said (sl-deliver and sl-tls-probe take the same four).
    public mutating func override(dns: String?, port: UInt16?, caFile: String?, transportMap: String?,
                                  mtaSTSPort: UInt16? = nil, dnssecResolver: String? = nil) throws {
        if let dns {
            do { dnsServer = try DNSServer(parsing: dns) } catch { throw OptionValueError(description: "--dns: \(error)") }
        }
        if let dnssecResolver {
            do { self.dnssecResolver = try DNSServer(parsing: dnssecResolver) } catch {
                throw OptionValueError(description: "--dnssec-resolver: \(error)")
            }
        }
        if let port { self.port = port }
        if let caFile { self.caFile = caFile }
        if let transportMap { transport = try TransportTable(path: transportMap) }
        if let mtaSTSPort { mtaSTS.port = mtaSTSPort }
    }
}

/// A bad value of a command-line option (exit 64).
public struct OptionValueError: SysexitReporting, CustomStringConvertible {
    public let description: String
    public var sysexit: Sysexit { .usage }
}
