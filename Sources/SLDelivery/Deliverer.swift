import Foundation
import SLMessage
import SLPolicy
import SLTransport

/// What happened to one recipient of one parcel.
public struct RecipientResult: Sendable {
    /// `rerouted`: handed to reroute_command (recorded by the queue runner).
    /// `notAttempted`: left alone because sl-deliver was asked to stop (SIGTERM).
    public enum Outcome: String, Sendable, CaseIterable { case delivered, deferred, failed, reroute, rerouted, notAttempted }
    public var recipient: String
    public var outcome: Outcome
    public var status: EnhancedStatus
    /// The server's reply or our reason, printable.
    public var reply: String
    public var host: String?
    public var tls: TLSDetails?

    public init(recipient: String, outcome: Outcome, status: EnhancedStatus, reply: String, host: String? = nil, tls: TLSDetails? = nil) {
        self.recipient = recipient; self.outcome = outcome; self.status = status
        self.reply = reply; self.host = host; self.tls = tls
    }
}

/// Where to send when not to the recipients' MX hosts: a submission relay.
public struct Relay: Sendable {
    public var host: String
    public var port: UInt16
    /// TLS from the first byte (port 465) rather than STARTTLS.
    public var implicitTLS: Bool
    public var username: String?
    public var password: String?

    public init(host: String, port: UInt16, implicitTLS: Bool, username: String? = nil, password: String? = nil) {
        self.host = host; self.port = port; self.implicitTLS = implicitTLS
        self.username = username; self.password = password
    }
}

public struct DeliveryOptions: Sendable {
    public var dnsServer: DNSServer?
    /// The trusted validating resolver (`dnssec_resolver`): every lookup goes to
    /// it, and MX hosts with validated TLSA records get DANE (RFC 7672).
    public var dnssecResolver: DNSServer?
    public var transport = TransportTable()
    public var port: UInt16 = 25
    public var caFile: String?
    public var heloName = localHostName()
    public var connectTimeout: Double = 30
    /// Per read or write (RFC 5321 4.5.3.2 suggests minutes; 10 minutes for the
    /// final reply to DATA is the standard's; we use one figure, settable).
    public var timeout: Double = 300
    public var maximumHosts = 5
    /// Domains (connections) delivered to at once.
    public var concurrency = 10
    public var relay: Relay?
    /// The TLS cache to correct when a TLS-only delivery finds no verified TLS
    /// (`tls_cache`: a file path or a PostgreSQL URI).
    public var tlsCache: String?
    /// MTA-STS policies (RFC 8461), enforced for every message (MTASTSGate.swift).
    public var mtaSTS = MTASTSOptions()
    public var tlsCacheTTL: Double = 86_400
    /// Told about problems that do not stop delivery.
    public var warn: @Sendable (String) -> Void = { _ in }
    /// Told of every session opened to a recipient domain's mail host and how its
    /// TLS went, for RFC 8460 reports (`tls_reporting`); not for a relay.
    public var onTLSSession: (@Sendable (TLSSessionRecord) -> Void)?

    public init() {}
}

/// Delivers parcels over SMTP: one connection per destination, several messages
/// per connection, destinations in parallel. TLS-only parcels travel only over
/// STARTTLS with TLS 1.2+ and a certificate verified for the MX name; anything less
/// and they are not sent at all (outcome `reroute`). Other parcels use STARTTLS
/// when offered and fall back to plaintext if the handshake fails — except to an
/// MX host with validated TLSA records (RFC 7672, Postfix's `dane` level): every
/// parcel goes to it only over TLS its records authenticate (or, when none of its
/// records is usable, over TLS at least), and a mismatch or a failed TLSA lookup
/// defers, with no plaintext and no unauthenticated TLS.
public final class Deliverer: @unchecked Sendable {
    let options: DeliveryOptions
    let context: TLSClientContext
    let policies: MTASTSPolicies

    public init(options: DeliveryOptions) throws {
        self.options = options
        context = try TLSClientContext(caFile: options.caFile)
        policies = MTASTSPolicies(options: options.mtaSTS, caFile: options.caFile, warn: options.warn)
    }

    /// Told of each recipient the moment the server accepts the message for it
    /// (the delivery record), from the delivering thread.
    public var onAccepted: (@Sendable (Parcel, String) -> Void)?

    /// Connections kept between calls of `deliver` (a run delivers in rounds), by
    /// host and port: no new connection, EHLO and STARTTLS for every round.
    private var idle: [String: [Session]] = [:]
    private let idleLock = NSLock()

    func takeIdle(_ host: MailHost) -> Session? {
        idleLock.lock()
        defer { idleLock.unlock() }
        let key = "\(host.name):\(host.port)"
        while let s = idle[key]?.popLast() {
            if s.connection.isIdle { return s }
        }
        return nil
    }

    func keepIdle(_ s: Session, _ host: MailHost) {
        idleLock.lock()
        defer { idleLock.unlock() }
        idle["\(host.name):\(host.port)", default: []].append(s)
    }

    /// Says QUIT on every kept connection. Call once the run is over.
    public func closeIdle() {
        idleLock.lock()
        let all = idle.values.joined()
        idle = [:]
        idleLock.unlock()
        for s in all { s.connection.quit() }
    }

    /// Results per parcel id, every recipient accounted for.
    public func deliver(_ parcels: [Parcel]) throws -> [String: [RecipientResult]] {
        // Group (parcel, recipients) by destination: the relay, or each domain.
        var groups: [String: [(Parcel, [String])]] = [:]
        var order: [String] = []
        for p in parcels {
            var byDomain: [String: [String]] = [:]
            for r in p.recipients {
                let key = options.relay == nil ? Parcel.domain(of: r) : "relay"
                if byDomain[key] == nil && groups[key] == nil { order.append(key) }
                byDomain[key, default: []].append(r)
            }
            for (key, rcpts) in byDomain { groups[key, default: []].append((p, rcpts)) }
        }
        // A destination with many messages gets several connections, as many as the
        // concurrency leaves room for (the way smtp-source's sessions work).
        let spare = max(1, options.concurrency / max(1, order.count))
        var split: [String: [(Parcel, [String])]] = [:]
        var splitOrder: [String] = []
        for key in order {
            let items = groups[key] ?? []
            let parts = min(spare, max(1, items.count / 20))
            for k in 0..<parts {
                let name = parts == 1 ? key : "\(key)#\(k)"
                split[name] = stride(from: k, to: items.count, by: parts).map { items[$0] }
                splitOrder.append(name)
            }
        }
        // the MTA-STS policies fetched for this round, written once it is done
        defer { policies.flush() }
        let work = split
        let outputs = try WorkerThreads.map(
            count: splitOrder.count, threads: options.concurrency,
            state: { try DNSResolver(server: options.dnssecResolver ?? options.dnsServer, timeout: 5, attempts: 2,
                                     validating: options.dnssecResolver != nil) },
            job: { resolver, i in self.deliverGroup(splitOrder[i], work[splitOrder[i]] ?? [], resolver: resolver) })
        var results: [String: [RecipientResult]] = [:]
        for (id, r) in outputs.joined() { results[id, default: []] += r }
        return results
    }

    /// A connection that has said EHLO (again, after TLS when TLS was started).
    final class Session {
        let connection: SMTPConnection
        let host: String
        let verified: Bool
        let tls: TLSDetails?
        /// Authenticated by the host's TLSA records (the only kind a
        /// `tls_min_verdict = dane` copy may take).
        var dane: Bool { verified && tls?.dane != nil }
        /// The host's TLSA records as TLS reports quote them, when DANE applies.
        let tlsa: [String]?
        init(_ c: SMTPConnection, host: String, verified: Bool, tls: TLSDetails?, tlsa: [String]? = nil) {
            connection = c; self.host = host; self.verified = verified; self.tls = tls; self.tlsa = tlsa
        }

        /// Whether this session may carry `p` at all.
        func mayCarry(_ p: Parcel) -> Bool { (!p.requireTLS || verified) && (!p.requireDANE || dane) }
    }

    func deliverGroup(_ name: String, _ work: [(Parcel, [String])], resolver: DNSResolver) -> [(String, [RecipientResult])] {
        // RFC 8689: messages that say `TLS-Required: No` go in a pass of their own,
        // without the domain's MTA-STS and DANE policies, on connections of their own.
        let optedOut = work.filter { $0.0.ignoresTLSPolicy }
        guard !optedOut.isEmpty else { return deliverGroup(name, work, resolver: resolver, ignoringPolicies: false) }
        let rest = work.filter { !$0.0.ignoresTLSPolicy }
        return (rest.isEmpty ? [] : deliverGroup(name, rest, resolver: resolver, ignoringPolicies: false))
            + deliverGroup(name, optedOut, resolver: resolver, ignoringPolicies: true)
    }

    func deliverGroup(_ name: String, _ work: [(Parcel, [String])], resolver: DNSResolver,
                      ignoringPolicies: Bool) -> [(String, [RecipientResult])] {
        let key = String(name.prefix { $0 != "#" })     // "domain#2": one of a domain's connections
        var pending = work
        var done: [(String, [RecipientResult])] = []
        var lastProblem = "no mail host answered"
        var tlsProblem: (verdict: TLSVerdict, reason: String)? = nil
        // A host whose TLSA records the session failed (or whose TLSA lookup failed).
        var daneProblem: String? = nil

        let hosts: [MailHost]
        if let relay = options.relay {
            hosts = [MailHost(name: relay.host, preference: nil, port: relay.port)]
        } else {
            do {
                hosts = try MailHost.hosts(for: key, transport: options.transport, port: options.port, resolver: resolver, limit: options.maximumHosts)
            } catch NullMXError.nullMX {
                return work.map { ($0.0.id, $0.1.map { RecipientResult(recipient: $0, outcome: .failed, status: .nullMX, reply: "\(key) accepts no mail (null MX)") }) }
            } catch DNSError.noSuchDomain {
                return work.map { ($0.0.id, $0.1.map { RecipientResult(recipient: $0, outcome: .failed, status: .badDestinationSystem, reply: "\(key): no such domain") }) }
            } catch {
                return work.map { ($0.0.id, $0.1.map { RecipientResult(recipient: $0, outcome: .deferred, status: .routingServerFailure, reply: "DNS: \(error)") }) }
            }
        }

        let gate = ignoringPolicies ? nil : MTASTSGate.lookup(key, options: options, policies: policies, resolver: resolver)
        func noteSession(_ host: MailHost, _ address: String?, _ local: String?, _ result: String, tlsa: [String]?) {
            guard options.relay == nil, let report = options.onTLSSession else { return }
            var record = TLSSessionRecord(time: Date().timeIntervalSince1970, domain: key, mx: host.name, address: address,
                                          sendingAddress: local, result: result)
            if let tlsa {
                // RFC 8460 4.3: DANE is reported as the host's TLSA records
                record.policyType = "tlsa"
                record.policyStrings = tlsa
            } else if let gate {
                // RFC 8460 4.3: an MTA-STS policy is reported as its text and patterns
                record.policyType = "sts"
                record.policyStrings = gate.policy.reportLines
                record.mxPatterns = gate.policy.mx
            }
            report(record)
        }
        for host in hosts where !pending.isEmpty && !StopRequest.requested {
            if let gate, let refusal = gate.refusal(of: host) {
                if gate.enforced {
                    lastProblem = refusal
                    tlsProblem = tlsProblem ?? (.encrypted, refusal)
                    continue
                }
                options.warn(gate.note(refusal))
            }
            let session: Session
            do {
                if !ignoringPolicies, let kept = takeIdle(host) {
                    session = kept
                } else {
                    session = try open(host, resolver: resolver, plaintext: false, ignoringDANE: ignoringPolicies)
                    noteSession(host, session.connection.address, session.connection.localAddress,
                                session.verified ? TLSSessionRecord.success : (session.tls?.failure?.rawValue ?? TLSResultType.validationFailure.rawValue),
                                tlsa: session.tlsa)
                }
            } catch let e as TLSUnusable {
                noteSession(host, e.address, e.localAddress, e.result ?? TLSResultType.validationFailure.rawValue, tlsa: e.tlsa)
                // The host answers but gives no verified TLS. TLS-only parcels must
                // try elsewhere; the others may go in plaintext.
                tlsProblem = (e.verdict, "\(host.name): \(e.reason)")
                lastProblem = tlsProblem!.reason
                // RFC 7672: nothing goes to a DANE host in plaintext or over TLS
                // its records did not authenticate; the next MX host may do better.
                if e.dane { daneProblem = tlsProblem!.reason; continue }
                if options.relay != nil { break }      // a relay without verified TLS gets nothing
                if let gate {
                    if gate.enforced { continue }       // no plaintext under an enforce policy
                    options.warn(gate.note(lastProblem))
                }
                guard pending.contains(where: { !$0.0.requireTLS }),
                      let plain = try? open(host, resolver: resolver, plaintext: true, ignoringDANE: ignoringPolicies) else { continue }
                let broken: Bool
                (pending, broken) = run(plain, pending, onlyOpportunistic: true, done: &done, lastProblem: &lastProblem)
                if !broken { plain.connection.quit() }
                continue
            } catch {
                lastProblem = "\(host.name): \(error)"
                continue
            }
            if !session.verified, let tls = session.tls {
                tlsProblem = (.encrypted, "\(host.name): certificate not verified (\(tls.failureDetail ?? "unknown"))")
            } else if session.verified, !session.dane, pending.contains(where: { $0.0.requireDANE }) {
                tlsProblem = (.verified, "\(host.name): not authenticated by DANE (no validated TLSA records), and tls_min_verdict = dane (\(TLSResultType.daneRequired.rawValue))")
            }
            if !session.verified, let gate, let tlsProblem {
                if gate.enforced {
                    lastProblem = tlsProblem.reason
                    session.connection.quit()
                    continue
                }
                options.warn(gate.note(tlsProblem.reason))
            }
            let broken: Bool
            (pending, broken) = run(session, pending, onlyOpportunistic: !session.verified, done: &done, lastProblem: &lastProblem)
            // A connection made without the policies never carries other mail.
            if !broken { if ignoringPolicies { session.connection.quit() } else { keepIdle(session, host) } }
        }

        // Asked to stop: what is left was not tried, and counts no attempt.
        if StopRequest.requested {
            for (p, rcpts) in pending {
                done.append((p.id, rcpts.map { RecipientResult(recipient: $0, outcome: .notAttempted, status: .noAnswerFromHost,
                                                               reply: "not attempted: sl-deliver was asked to stop") }))
            }
            return done
        }
        // What is left could not be handed over.
        for (p, rcpts) in pending {
            if let daneProblem {
                // A host that publishes TLSA records failed them: an attack or a
                // broken server, which may be over by the next try (Postfix defers too).
                if p.requireTLS { noteTLSFailure(key, .none, daneProblem) }
                done.append((p.id, rcpts.map { RecipientResult(recipient: $0, outcome: .deferred, status: .cryptographicFailureNow,
                                                               reply: "DANE: \(daneProblem)") }))
                continue
            }
            // Only a recipient's own MX can be judged for TLS; a relay without
            // verified TLS is our problem, not the recipient's: wait for it.
            if p.requireTLS, let tlsProblem, options.relay == nil {
                noteTLSFailure(key, tlsProblem.verdict, tlsProblem.reason)
                done.append((p.id, rcpts.map { RecipientResult(recipient: $0, outcome: .reroute, status: .cryptographicFailureNow,
                                                               reply: "TLS-only delivery refused: \(tlsProblem.reason)") }))
            } else if let gate, gate.enforced {
                done.append((p.id, rcpts.map { RecipientResult(recipient: $0, outcome: .deferred, status: .cryptographicFailureNow, reply: gate.deferral(lastProblem)) }))
            } else {
                done.append((p.id, rcpts.map { RecipientResult(recipient: $0, outcome: .deferred, status: .noAnswerFromHost, reply: lastProblem) }))
            }
        }
        return done
    }

    /// Runs the parcels this session may carry; returns the rest, and whether the
    /// connection broke (else it may carry more).
    func run(_ session: Session, _ work: [(Parcel, [String])], onlyOpportunistic: Bool,
             done: inout [(String, [RecipientResult])], lastProblem: inout String) -> ([(Parcel, [String])], Bool) {
        var rest: [(Parcel, [String])] = []
        var broken = false
        let pipelining = session.connection.extensions["PIPELINING"] != nil
        // Whether the envelope of work[i] already went out behind the previous
        // message's data (RFC 2920 allows the content as the first "command" of a
        // group): one round trip and a few system calls less per message.
        var sentAhead = false
        for (i, (p, rcpts)) in work.enumerated() {
            if broken || (onlyOpportunistic && p.requireTLS) || !session.mayCarry(p) || StopRequest.requested { rest.append((p, rcpts)); continue }
            if !sentAhead, let refused = precheck(session, p, rcpts) {
                done.append((p.id, refused))
                continue
            }
            var ahead: [String]? = nil
            if pipelining, i + 1 < work.count {
                let (np, nr) = work[i + 1]
                if !(onlyOpportunistic && np.requireTLS) && session.mayCarry(np) && precheck(session, np, nr) == nil {
                    ahead = envelope(session.connection, np, nr)
                }
            }
            do {
                let (results, wentAhead) = try transaction(session, p, rcpts, envelopeSent: sentAhead, ahead: ahead)
                sentAhead = wentAhead
                done.append((p.id, results))
            } catch {
                // The connection broke: what this transaction had is unknown, so
                // its recipients are deferred (at-least-once), the rest try the next host.
                broken = true
                lastProblem = "\(session.host): \(error)"
                done.append((p.id, rcpts.map { RecipientResult(recipient: $0, outcome: .deferred, status: .badConnection,
                                                               reply: "connection lost: \(error)", host: session.host, tls: session.tls) }))
            }
        }
        return (rest, broken)
    }

    struct TLSUnusable: SysexitReporting {
        let verdict: TLSVerdict; let reason: String
        /// The host has validated TLSA records (or a failed TLSA lookup): no
        /// plaintext either, whatever the parcel asked for.
        var dane = false
        /// The RFC 8460 result type, and the addresses of both ends, for TLS reports.
        var result: String? = nil
        var address: String? = nil
        var localAddress: String? = nil
        /// The host's TLSA records as TLS reports quote them, when DANE applies.
        var tlsa: [String]? = nil
        var sysexit: Sysexit { .tempFail }
    }

    /// Connects to the first address of `host` that greets, says EHLO, and (unless
    /// `plaintext`) starts TLS. Throws TLSUnusable when the host greets but TLS is
    /// missing or fails; the caller decides about plaintext.
    func open(_ host: MailHost, resolver: DNSResolver, plaintext: Bool, ignoringDANE: Bool = false) throws -> Session {
        let (addresses, addressesSecure) = try host.resolve(resolver)
        guard !addresses.isEmpty else { throw TransportError.connect("\(host.name) has no address") }
        // The lookup and the rule sl-tls-probe used (RFC 7672); a relay is not an MX host.
        let dane = options.relay != nil ? .notApplicable("a relay")
            : ignoringDANE ? .notApplicable("the message says TLS-Required: No (RFC 8689)")
            : DANEPolicy.forHost(host, addressesSecure: addressesSecure, resolver: resolver)
        if case .lookupFailed(let why) = dane {
            throw TLSUnusable(verdict: .none, reason: why, dane: true, result: TLSResultType.dnssecInvalid.rawValue, tlsa: [])
        }
        if plaintext && dane.forbidsPlaintext {
            throw TLSUnusable(verdict: .none, reason: "the host publishes TLSA records: no plaintext", dane: true)
        }
        var lastError: any Error = TransportError.connect("\(host.name): no address answered")
        for address in addresses {
            let c: SMTPConnection
            var implicitTLS: TLSDetails? = nil
            do {
                c = try SMTPConnection(address: address, port: host.port, connectTimeout: options.connectTimeout, timeout: options.timeout)
                if let relay = options.relay, relay.implicitTLS {
                    implicitTLS = try c.startImplicitTLS(context: context, serverName: host.name)
                }
                _ = try c.greeting()
            } catch {
                lastError = error
                continue
            }
            var ehlo = try c.ehlo(options.heloName)
            if ehlo.code != 250 {
                ehlo = try c.command("HELO \(options.heloName)")
                guard ehlo.code == 250 else { throw TransportError.protocolViolation("\(host.name) refused EHLO and HELO: \(ehlo.text)") }
            }
            if let tls = implicitTLS {
                guard tls.verified && tls.modernProtocol else {
                    throw TLSUnusable(verdict: .encrypted, reason: "certificate not verified: \(tls.failureDetail ?? tls.protocolVersion)",
                                      result: tls.failure?.rawValue, address: address, localAddress: c.localAddress)
                }
                try authenticate(c)
                return Session(c, host: host.name, verified: true, tls: tls)
            }
            if plaintext { return Session(c, host: host.name, verified: false, tls: nil) }
            guard c.extensions["STARTTLS"] != nil else {
                c.quit()
                throw TLSUnusable(verdict: .none, reason: "STARTTLS not offered", dane: dane.forbidsPlaintext,
                                  result: TLSResultType.starttlsNotSupported.rawValue, address: address, localAddress: c.localAddress,
                                  tlsa: dane.reportStrings)
            }
            let tls: TLSDetails
            do {
                tls = try c.startTLS(context: context, serverName: host.name, verifyName: host.name, dane: dane.authentication)
            } catch {
                throw TLSUnusable(verdict: .none, reason: "\(error)", dane: dane.forbidsPlaintext, result: TLSResultType.validationFailure.rawValue,
                                  address: address, localAddress: c.localAddress, tlsa: dane.reportStrings)
            }
            guard try c.ehlo(options.heloName).code == 250 else {
                throw TLSUnusable(verdict: .none, reason: "EHLO after STARTTLS refused", dane: dane.forbidsPlaintext,
                                  result: TLSResultType.validationFailure.rawValue, address: address, localAddress: c.localAddress,
                                  tlsa: dane.reportStrings)
            }
            if let judged = dane.judge(tls) {
                guard judged.verdict != .none else {
                    c.quit()
                    throw TLSUnusable(verdict: .none, reason: judged.reason ?? "DANE authentication failed", dane: true,
                                      result: (judged.result ?? .tlsaInvalid).rawValue, address: address, localAddress: c.localAddress,
                                      tlsa: dane.reportStrings)
                }
                return Session(c, host: host.name, verified: judged.verdict == .dane, tls: tls, tlsa: dane.reportStrings)
            }
            let verified = tls.verified && tls.modernProtocol
            if options.relay != nil {
                // Credentials and mail go to a relay only over verified TLS.
                guard verified else { throw TLSUnusable(verdict: .encrypted, reason: "certificate not verified: \(tls.failureDetail ?? "")") }
                try authenticate(c)
            }
            return Session(c, host: host.name, verified: verified, tls: tls)
        }
        throw lastError
    }

    /// AUTH PLAIN, else AUTH LOGIN (RFC 4954), when the relay has credentials.
    func authenticate(_ c: SMTPConnection) throws {
        guard let relay = options.relay, let user = relay.username, let password = relay.password else { return }
        let mechanisms = (c.extensions["AUTH"] ?? "").uppercased().split(separator: " ")
        let reply: SMTPReply
        if mechanisms.contains("PLAIN") {
            let token = Data(([0] + Array(user.utf8) + [0] + Array(password.utf8))).base64EncodedString()
            reply = try c.command("AUTH PLAIN \(token)")
        } else if mechanisms.contains("LOGIN") {
            guard try c.command("AUTH LOGIN").code == 334, try c.command(Data(user.utf8).base64EncodedString()).code == 334 else {
                throw RelayAuthError(reply: "the relay refused AUTH LOGIN")
            }
            reply = try c.command(Data(password.utf8).base64EncodedString())
        } else {
            throw RelayAuthError(reply: "the relay offers neither AUTH PLAIN nor AUTH LOGIN")
        }
        guard reply.code == 235 else { throw RelayAuthError(reply: "the relay refused the credentials: \(reply.text.prefix(200))") }
    }

    /// Extensions the message needs that the server lacks: fail cleanly, never
    /// send it broken. Nil when the message may go.
    func precheck(_ s: Session, _ p: Parcel, _ rcpts: [String]) -> [RecipientResult]? {
        let c = s.connection
        func all(_ status: EnhancedStatus, _ why: String) -> [RecipientResult] {
            rcpts.map { RecipientResult(recipient: $0, outcome: .failed, status: status, reply: why, host: s.host, tls: s.tls) }
        }
        if let limit = c.extensions["SIZE"].flatMap({ Int($0) }), limit > 0, p.size > limit {
            return all(.messageTooBig, "message size \(p.size) exceeds \(s.host)'s limit of \(limit)")
        }
        if p.eightBit && c.extensions["8BITMIME"] == nil {
            return all(.conversionRequired, "the message has 8-bit content and \(s.host) does not offer 8BITMIME")
        }
        if p.international && c.extensions["SMTPUTF8"] == nil {
            return all(.internationalizationNotSupported, "the message needs SMTPUTF8 (international addresses or headers), which \(s.host) does not offer")
        }
        return nil
    }

    /// MAIL, RCPT..., DATA for a parcel.
    func envelope(_ c: SMTPConnection, _ p: Parcel, _ rcpts: [String]) -> [String] {
        var mail = "MAIL FROM:<\(p.sender)>"
        if c.extensions["SIZE"] != nil { mail += " SIZE=\(p.size)" }
        if p.eightBit { mail += " BODY=8BITMIME" }
        if p.international { mail += " SMTPUTF8" }
        // RFC 8689: a TLS-only copy asks every later hop for TLS too, where the next
        // hop can carry that (it offers REQUIRETLS, over the verified TLS a TLS-only
        // copy only ever goes over).
        if p.requireTLS && c.extensions["REQUIRETLS"] != nil { mail += " REQUIRETLS" }
        return [mail] + rcpts.map { "RCPT TO:<\($0)>" } + ["DATA"]
    }

    /// One mail transaction: MAIL, RCPT..., DATA — pipelined when the server
    /// offers PIPELINING (RFC 2920) — then the message. `envelopeSent`: the
    /// commands already went out behind the previous message. `ahead`: the next
    /// parcel's commands, sent behind this message's data when it gets that far;
    /// the second result says whether they were. The caller has run `precheck`.
    func transaction(_ s: Session, _ p: Parcel, _ rcpts: [String], envelopeSent: Bool = false,
                     ahead: [String]? = nil) throws -> ([RecipientResult], Bool) {
        let c = s.connection
        let commands = envelope(c, p, rcpts)
        let mail = commands[0]
        var replies: [SMTPReply] = []
        if c.extensions["PIPELINING"] != nil {
            if !envelopeSent { try c.write(try Self.lines(commands)) }
            for _ in commands { replies.append(try c.readReply()) }
        } else {
            for command in commands {
                let r = try c.command(command)
                replies.append(r)
                if command == mail && !r.isPositive { break }
                if command.hasPrefix("RCPT"), replies.count == commands.count - 1, !replies.dropFirst().contains(where: \.isPositive) { break }
            }
        }
        func result(_ r: String, _ reply: SMTPReply) -> RecipientResult {
            let outcome: RecipientResult.Outcome = reply.isPositive ? .delivered : reply.isTemporaryFailure ? .deferred : .failed
            return RecipientResult(recipient: r, outcome: outcome, status: Self.status(of: reply), reply: reply.text, host: s.host, tls: s.tls)
        }
        let mailReply = replies[0]
        guard mailReply.isPositive else {
            if replies.count == commands.count && replies.last?.code == 354 { try c.write(Array(".\r\n".utf8)); _ = try c.readReply() }
            _ = try? c.command("RSET")
            return (rcpts.map { result($0, mailReply) }, false)
        }
        let rcptReplies = Array(replies.dropFirst().prefix(rcpts.count))
        var results = zip(rcpts, rcptReplies).map { result($0, $1) }
        let accepted = rcptReplies.indices.filter { rcptReplies[$0].isPositive }
        let dataReply = replies.count == commands.count ? replies.last! : nil
        guard !accepted.isEmpty else {
            if dataReply?.code == 354 { try c.write(Array(".\r\n".utf8)); _ = try c.readReply() }
            _ = try? c.command("RSET")
            return (results, false)
        }
        guard let dataReply, dataReply.code == 354 else {
            let r = dataReply ?? SMTPReply(code: 451, lines: ["no reply to DATA"])
            for i in accepted { results[i] = result(rcpts[i], r) }
            _ = try? c.command("RSET")
            return (results, false)
        }
        try sendData(p.message, over: c, then: try ahead.map(Self.lines) ?? [])
        let final = try c.readReply()
        for i in accepted { results[i] = result(rcpts[i], final) }
        if final.isPositive, let onAccepted { for i in accepted { onAccepted(p, rcpts[i]) } }
        // After the reply to the data the server is ready for the next MAIL
        // (RFC 5321 4.1.1.4); RSET only clears up after failures above.
        return (results, ahead != nil)
    }

    /// Commands as one pipelined group; a command with a line break in it (an
    /// address smuggling a command) is refused, as SMTPConnection.send does.
    static func lines(_ commands: [String]) throws -> [UInt8] {
        guard !commands.contains(where: { $0.utf8.contains { $0 == 0x0D || $0 == 0x0A } }) else {
            throw TransportError.protocolViolation("refusing to send a command with a line break in it")
        }
        return Array(commands.map { $0 + "\r\n" }.joined().utf8)
    }

    /// The message as DATA, then `then` (the next envelope) in the same write.
    func sendData(_ message: Message, over c: SMTPConnection, then: [UInt8] = []) throws {
        var encoder = DataEncoder()
        encoder.encode(message.header.bytes)
        try message.body.forEachChunk { chunk in
            encoder.encode(chunk)
            if encoder.output.count >= 64 << 10 { try c.write(encoder.output); encoder.output.removeAll(keepingCapacity: true) }
        }
        encoder.finish()
        encoder.output += then
        try c.write(encoder.output)
    }

    /// The RFC 3463 code in a reply's text (ENHANCEDSTATUSCODES), else one from
    /// its class.
    static func status(of reply: SMTPReply) -> EnhancedStatus {
        // class "." subject "." detail (RFC 3463 2), class matching the reply code;
        // scanned as octets, since it runs for every reply of every message.
        if let first = reply.lines.first {
            let token = first.utf8.prefix { $0 != UInt8(ascii: " ") }
            var parts = 0, digits = 0, ok = !token.isEmpty
            for b in token where ok {
                if b == UInt8(ascii: ".") {
                    ok = digits > 0 && digits <= 3
                    parts += 1; digits = 0
                } else if b >= 0x30 && b <= 0x39 {
                    digits += 1
                } else {
                    ok = false
                }
            }
            if ok && parts == 2 && digits > 0 && digits <= 3,
               let c = token.first, c == UInt8(ascii: "0") + UInt8(reply.code / 100), [2, 4, 5].contains(reply.code / 100),
               token.dropFirst().first == UInt8(ascii: ".") {
                return EnhancedStatus(rawValue: String(decoding: token, as: UTF8.self)) ?? .ofReplyClass(reply.code)
            }
        }
        return .ofReplyClass(reply.code)
    }

    /// A TLS-only delivery found no verified TLS: the cache must stop saying it
    /// has, so that the new decision picks PKI or escrow.
    func noteTLSFailure(_ domain: String, _ verdict: TLSVerdict, _ reason: String) {
        guard let cache = options.tlsCache else { return }
        do {
            try TLSCache.store(at: cache).merge([domain: .init(verdict: verdict, checked: Date().timeIntervalSince1970,
                                                               ttl: options.tlsCacheTTL, details: reason)])
        } catch {
            options.warn("cannot correct the TLS cache for \(domain): \(error)")
        }
    }
}

public struct RelayAuthError: SysexitReporting, CustomStringConvertible {
    public let reply: String
    public var description: String { reply }
    /// The relay refused the credentials: the caller keeps the message while the
    /// password is put right.
    public var sysexit: Sysexit { .tempFail }
}

