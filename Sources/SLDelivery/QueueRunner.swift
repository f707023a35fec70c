#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage
import SLPolicy
import SLTransport

/// Works the queue: delivery attempts, what each outcome does to a queued item,
/// delivery reports, re-routing of TLS-only recipients, back-off and lifetime
/// (the rules themselves are in DeliveryPolicy.swift).
public final class QueueRunner {
    let queue: DeliveryQueue
    /// One for the run: its TLS context (the CA store) is loaded once.
    let deliverer: Deliverer
    let hostname: String
    let audit: AuditLog?
    let rerouteCommand: String?
    let lifetime: Double
    /// Where a line for the admin goes (stderr, in sl-deliver).
    let warn: (String) -> Void
    /// What was delivered already, by Message-ID and recipient (nil: not kept).
    let record: DeliveryRecord?
    /// Seconds after which a sender hears that a message is late (0: never).
    public var delayWarning: Double = 0
    /// Delay warnings queued in this round, sent with its delivery reports.
    private var warnings: [QueueItem] = []

    public init(queue: DeliveryQueue, deliverer: Deliverer, hostname: String, audit: AuditLog?, rerouteCommand: String?,
                lifetime: Double, record: DeliveryRecord? = nil, warn: @escaping (String) -> Void) {
        self.queue = queue; self.deliverer = deliverer; self.hostname = hostname
        self.audit = audit; self.rerouteCommand = rerouteCommand; self.lifetime = lifetime; self.warn = warn
        self.record = record
        if let record {
            deliverer.onAccepted = { parcel, recipient in
                if let key = parcel.recordKey {
                    record.record(messageID: key.id, size: key.size, recipient: recipient, now: Date().timeIntervalSince1970)
                }
            }
        }
    }

    static let tool = "sl-deliver"

    /// Every item that is due (or every item with `force`), oldest first.
    public func runQueue(now: Double, force: Bool = false) throws {
        queue.cleanUp(now: now)
        let due = try queue.items().filter { $0.state.held != true && (force || $0.state.nextAttempt <= now) }
        try attempt(due, now: now)
    }

    /// A read that failed (try again later), not a message that will never parse.
    static func isIO(_ error: MessageError) -> Bool {
        if case .io = error { return true }
        return false
    }

    /// A queue item that fails this way will fail the same way every time.
    static func neverParses(_ error: any Error) -> Bool {
        if error is RejectedMessage { return true }
        if let m = error as? MessageError { return !isIO(m) }
        return false
    }

    /// Items per delivery round: bounds memory whatever the queue holds.
    static let batch = 200

    /// A message in a delivery round: from the queue (locked by `lock`), or
    /// fresh from the input and not queued (`lock` nil).
    struct Loaded {
        let id: String
        let message: Message
        let envelope: Envelope
        var state: QueueState
        let lock: Int32?
    }

    /// One delivery attempt for the items, then the same for the delivery reports
    /// they produced. Each item stays locked from loading to settling.
    func attempt(_ items: [QueueItem], now: Double) throws {
        var pending = items[...]
        while !pending.isEmpty {
            let round = pending.prefix(Self.batch)
            pending = pending.dropFirst(round.count)
            var loaded: [Loaded] = []
            defer { for l in loaded { if let fd = l.lock { queue.unlock(fd) } } }
            for item in round {
                guard let lock = queue.lock(item.id) else { continue }      // another process has it
                do {
                    let message = try queue.message(item.id, from: lock)
                    guard let envelope = try Envelope.read(from: message.header) else {
                        throw MessageError.malformed("no routing fields (X-SL-*)")
                    }
                    loaded.append(Loaded(id: item.id, message: message, envelope: envelope, state: item.state, lock: lock))
                } catch where Self.neverParses(error) {
                    // It will never parse: out of the way, with one line, not skipped for ever.
                    do {
                        try queue.setAside(item.id, reason: "\(error)")
                        warn("queue item \(item.id): \(error); moved to \(queue.asideDirectory)")
                    } catch {
                        warn("queue item \(item.id): \(error); left in the queue")
                    }
                    queue.unlock(lock)
                } catch {
                    queue.unlock(lock)
                    warn("queue item \(item.id): \(error); left in the queue")
                }
            }
            pending += try deliver(loaded, now: now)
        }
    }

    /// The first attempt for a round of input (at most `Intake.roundMessages`
    /// messages or `Intake.roundOctets`, as sl-deliver takes them): nothing is
    /// queued unless it is not delivered now. Returns once every message is
    /// delivered, bounced, handed to reroute_command, or durably queued.
    public func attempt(_ intake: Intake, now: Double) throws {
        let inherited = Self.inheritedState()
        var loaded: [Loaded] = []
        for i in 0..<intake.count {
            var (message, envelope) = intake.message(i)
            // Routing without a digest (made by other software) keys the record on
            // the Message-ID: one is made before anything is sent or recorded, and
            // the queued copy keeps it.
            if envelope.messageDigest == nil && message.header["Message-ID"] == nil {
                let unique = "\(String(UInt64.random(in: 0...UInt64.max), radix: 36)).\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
                try message.header.add("Message-ID", "<sl-deliver.\(unique)@\(hostname)>")
            }
            loaded.append(Loaded(id: "intake-\(i)", message: message, envelope: envelope,
                                 state: inherited ?? QueueState(created: now), lock: nil))
        }
        try attempt(try deliver(loaded, now: now), now: now)
    }

    /// What a round sends: each message's parcel for the recipients that are not
    /// waiting for a new decision.
    static func parcels(for loaded: [Loaded]) throws -> [Parcel] {
        var parcels: [Parcel] = []
        for l in loaded {
            let waiting = Set(l.state.reroute)
            let rcpts = l.envelope.recipients.map(\.address).filter { !waiting.contains($0) }
            if !rcpts.isEmpty {
                var parcel = try Parcel(id: l.id, sender: l.envelope.sender, recipients: rcpts,
                                        requireTLS: l.envelope.tls != .opportunistic, message: l.message, digest: l.envelope.messageDigest)
                parcel.requireDANE = l.envelope.tls == .dane
                parcels.append(parcel)
            }
        }
        return parcels
    }

    /// Delivers one round and settles every message of it; returns the delivery
    /// reports it queued. What is left of fresh messages is queued in one commit.
    private func deliver(_ loaded: [Loaded], now: Double) throws -> [QueueItem] {
        var parcels = try Self.parcels(for: loaded)
        // Recipients the record says have this message already are not sent it
        // again: a rerun of an interrupted input, a queue pass after a killed one.
        var earlier: [String: [RecipientResult]] = [:]
        if let record {
            for i in parcels.indices {
                guard let (id, size) = parcels[i].recordKey else { continue }
                let done = parcels[i].recipients.filter { record.contains(messageID: id, size: size, recipient: $0) }
                guard !done.isEmpty else { continue }
                earlier[parcels[i].id] = done.map {
                    RecipientResult(recipient: $0, outcome: .delivered, status: .success,
                                    reply: "delivered earlier (the delivery record has \(id) for this recipient)")
                }
                parcels[i].recipients.removeAll { done.contains($0) }
            }
            parcels.removeAll { $0.recipients.isEmpty }
        }
        var results = parcels.isEmpty ? [:] : try deliverer.deliver(parcels)
        for (id, r) in earlier { results[id, default: []] += r }
        var reports: [QueueItem] = []
        var staged: [DeliveryQueue.Staged] = []
        do {
            for l in loaded {
                var state = l.state
                if let report = try settle(l.id, message: l.message, envelope: l.envelope, state: &state,
                                           results: results[l.id] ?? [], now: now, queued: l.lock != nil, staged: &staged) {
                    reports.append(QueueItem(id: report, state: QueueState(created: now)))
                }
            }
            _ = try queue.commit(staged, now: now)
        } catch {
            queue.discard(staged)
            throw error
        }
        reports += warnings
        warnings = []
        record?.sync()
        try audit?.commit()
        return reports
    }

    /// Applies one attempt's results to an item; returns the id of a delivery
    /// report it queued, if any.
    /// A fresh message (`queued` false) that is not finished is staged into
    /// `staged` with its remaining recipients and state, for the caller to commit.
    func settle(_ id: String, message: Message, envelope: Envelope, state: inout QueueState, results: [RecipientResult],
                now: Double, queued: Bool = true, staged: inout [DeliveryQueue.Staged]) throws -> String? {
        var remaining = envelope.recipients
        var failures: [DeliveryReport.Failure] = []
        // Audit records wait for the queue id, known once a fresh message is staged.
        var outcomes: [RecipientResult] = []
        let attempt = state.attempts + 1
        let expired = now - state.created >= lifetime
        for r in results {
            outcomes.append(r)
            switch r.outcome {
            case .delivered:
                remaining.removeAll { $0.address == r.recipient }
            case .failed:
                remaining.removeAll { $0.address == r.recipient }
                failures.append(.init(recipient: r.recipient, status: r.status, diagnostic: r.reply))
            case .deferred:
                state.lastReason = r.reply
                if expired {
                    remaining.removeAll { $0.address == r.recipient }
                    let bounce = RecipientResult(recipient: r.recipient, outcome: .failed, status: .deliveryTimeExpired,
                                                 reply: "still undeliverable after \(Self.duration(lifetime)): \(r.reply)")
                    outcomes.append(bounce)
                    failures.append(.init(recipient: r.recipient, status: bounce.status, diagnostic: bounce.reply))
                }
            case .reroute, .rerouted:
                if !state.reroute.contains(r.recipient) { state.reroute.append(r.recipient) }
                state.lastReason = r.reply
            case .notAttempted:
                break
            }
        }
        // TLS-only recipients without verified TLS go back for a new decision, with
        // the message's arrival time and attempt count (so that a decision which
        // keeps choosing TLS-only still ends in a bounce once the lifetime is over).
        if !state.reroute.isEmpty {
            let handed = expired ? [] : reroute(message, sender: envelope.sender, recipients: state.reroute, state: state)
            for r in handed {
                outcomes.append(RecipientResult(recipient: r, outcome: .rerouted, status: .success,
                                                reply: "handed to reroute_command for a new decision"))
            }
            remaining.removeAll { handed.contains($0.address) }
            state.reroute.removeAll { handed.contains($0) }
            if expired {
                for r in state.reroute {
                    let bounce = RecipientResult(recipient: r, outcome: .failed, status: .encryptionNeeded,
                                                 reply: "TLS-only delivery impossible and no new decision was made: \(state.lastReason ?? "")")
                    outcomes.append(bounce)
                    failures.append(.init(recipient: r, status: bounce.status, diagnostic: bounce.reply))
                }
                remaining.removeAll { state.reroute.contains($0.address) }
                state.reroute = []
            }
        }

        // Late but still being tried: the sender hears so once (Postfix's
        // delay_warning_time), a report with Action: delayed for who is left.
        let waiting = remaining.filter { !state.reroute.contains($0.address) }
        if delayWarning > 0, state.delayWarned != true, !expired, !waiting.isEmpty, !envelope.sender.isEmpty,
           now - state.created >= delayWarning {
            var original = message
            original.header.removeEnvelopeFields()
            let warning = try DeliveryReport.routed(
                for: original, sender: envelope.sender, account: envelope.account, hostname: hostname,
                date: Date(timeIntervalSince1970: now),
                failures: waiting.map { .init(recipient: $0.address, status: .deferredTemporary,
                                              diagnostic: "not delivered after \(Self.duration(now - state.created)) and still being tried: \(state.lastReason ?? "no reason recorded")") },
                explanation: DeliveryReport.delayExplanation, delayed: Date(timeIntervalSince1970: state.created + lifetime))
            warnings.append(try queue.add(warning, now: now))
            state.delayWarned = true
        }

        var reportID: String? = nil
        if !failures.isEmpty && !envelope.sender.isEmpty {
            var original = message
            original.header.removeEnvelopeFields()
            let report = try DeliveryReport.routed(for: original, sender: envelope.sender, account: envelope.account,
                                                   hostname: hostname, date: Date(timeIntervalSince1970: now),
                                                   failures: failures, explanation: DeliveryReport.deliveryExplanation)
            reportID = try queue.add(report, now: now).id
        } else if !failures.isEmpty {
            warn("a delivery report failed for \(failures.map(\.recipient).joined(separator: ", ")); the null sender gets no report")
        }

        if remaining.isEmpty {
            if queued { queue.remove(id) }
        } else {
            var copy = message
            // A fresh message has its routing beside it, not in it: the queued copy
            // must carry it.
            if remaining.count != envelope.recipients.count || !queued {
                var env = envelope
                env.recipients = remaining
                try env.write(into: &copy.header)
                if queued { try queue.replace(id, with: copy) }
            }
            // Not tried at all (asked to stop): no attempt counted, due at once.
            if results.contains(where: { $0.outcome != .notAttempted }) || results.isEmpty {
                state.attempts += 1
                state.nextAttempt = now + DeliveryPolicy.backoff(after: state.attempts)
            }
            if queued {
                try queue.save(QueueItem(id: id, state: state))
            } else {
                staged.append(try queue.stage(copy, state: state))
            }
        }
        let queueID = queued ? id : (remaining.isEmpty ? nil : staged.last?.id)
        for r in outcomes { try audit(r, message: message, envelope: envelope, queueID: queueID, attempt: attempt) }
        return reportID
    }

    /// "5 days", "2 hours", "30 seconds".
    static func duration(_ seconds: Double) -> String {
        if seconds >= 86_400 { return String(format: "%g days", (seconds / 86_400 * 10).rounded() / 10) }
        if seconds >= 3600 { return String(format: "%g hours", (seconds / 3600 * 10).rounded() / 10) }
        return "\(Int(seconds.rounded())) seconds"
    }

    /// Set for the reroute command's pipeline: an sl-deliver inside it does not
    /// reroute again (a policy that keeps choosing TLS-only for a domain without
    /// verified TLS would otherwise recurse); it queues instead.
    static let rerouteGuard = "SL_REROUTED"
    /// When the re-routed message first arrived, and the attempts it has had: the
    /// sl-deliver inside the reroute pipeline queues it with these, not afresh.
    static let createdVariable = "SL_QUEUE_CREATED"
    static let attemptsVariable = "SL_QUEUE_ATTEMPTS"

    /// The queue state a re-routed message brings along; nil outside a reroute
    /// pipeline or when the values are not numbers.
    static func inheritedState() -> QueueState? {
        guard environmentValue(rerouteGuard) != nil,
              let created = environmentValue(createdVariable).flatMap(Double.init), created > 0,
              let attempts = environmentValue(attemptsVariable).flatMap(Int.init), attempts >= 0 else { return nil }
        var state = QueueState(created: created)
        state.attempts = attempts
        return state
    }

    /// Hands the message to `reroute_command` for the recipients; returns those it
    /// took (all on exit 0, none otherwise).
    func reroute(_ message: Message, sender: String, recipients: [String], state: QueueState) -> [String] {
        guard let command = rerouteCommand else { return [] }
        guard environmentValue(Self.rerouteGuard) == nil else {
            warn("\(recipients.joined(separator: ", ")): no verified TLS again after a new decision; kept in the queue (check tls_min_verdict and tls_static)")
            return []
        }
        var m = message
        m.header.removeEnvelopeFields()
        guard let bytes = try? m.bytes() else { return [] }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command, "sl-reroute"] + recipients
        var env = ProcessInfo.processInfo.environment
        env["SL_SENDER"] = sender
        env[Self.rerouteGuard] = "1"
        env[Self.createdVariable] = String(Int(state.created))
        env[Self.attemptsVariable] = String(state.attempts + 1)
        p.environment = env
        let input = Pipe()
        p.standardInput = input
        p.standardOutput = FileHandle.standardError      // our stdout is not theirs
        do {
            try p.run()
            try input.fileHandleForWriting.write(contentsOf: Data(bytes))
            try input.fileHandleForWriting.close()
        } catch {
            warn("reroute_command could not run: \(error)")
            return []
        }
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            warn("reroute_command exited \(p.terminationStatus); \(recipients.joined(separator: ", ")) stay queued")
            return []
        }
        return recipients
    }

    /// One audit record: one recipient, one outcome. `queue_id` names the queue
    /// item (`sl-deliver --list-queue`) while the message is or stays queued, and
    /// `attempt` counts the tries, with `retry` set from the second on, so that
    /// "what happened to this recipient?" is one grep for the address.
    func audit(_ r: RecipientResult, message: Message, envelope: Envelope, queueID: String?, attempt: Int) throws {
        guard let audit else { return }
        var fields: [String: Any] = [
            "time": audit.timestamp(Date()), "tool": Self.tool, "recipient": r.recipient,
            "outcome": r.outcome.rawValue, "status": r.status.rawValue, "reply": r.reply,
            "attempt": attempt,
        ]
        if attempt > 1 { fields["retry"] = true }
        if let queueID { fields["queue_id"] = queueID }
        if let id = message.header["Message-ID"] { fields["message_id"] = id }
        if let id = envelope.escrowID { fields["escrow_id"] = id }
        if let id = envelope.originalMessageID { fields["original_message_id"] = id }
        if let host = r.host { fields["mx"] = host }
        if let tls = r.tls {
            fields["tls_protocol"] = tls.protocolVersion
            fields["tls_cipher"] = tls.cipher
            fields["certificate"] = tls.verified ? "verified" : (tls.failure?.rawValue ?? "not verified")
            if let dane = tls.dane { fields["dane"] = dane.summary }
        } else if r.host != nil {
            fields["tls_protocol"] = "none"
        }
        try audit.record(fields)
    }

    /// What --dry-run prints for a message: who, how, where.
    public static func plan(_ message: Message, _ envelope: Envelope, options: DeliveryOptions) throws -> String {
        var s = "message \(message.index)"
        if let id = message.header["Message-ID"] { s += " \(id)" }
        s += ": from <\(envelope.sender)>, TLS \(envelope.tls == .required ? "required (verified, TLS-only)" : envelope.tls == .dane ? "required (DANE, TLS-only)" : "opportunistic")\n"
        if let problem = try DeliveryPolicy.protectionProblem(message, envelope) {
            return s + "  NOT SENT: \(problem)\n"
        }
        for r in envelope.recipients {
            let domain = Parcel.domain(of: r.address)
            let route: String
            if let relay = options.relay {
                route = "relay \(relay.host):\(relay.port)" + (relay.implicitTLS ? " (implicit TLS)" : " (STARTTLS)")
            } else if let hop = options.transport.route(for: domain) {
                route = hop.lookupMX ? "MX of \(hop.host)" : "\(hop.host):\(hop.port ?? options.port) (transport table)"
            } else {
                route = "MX of \(domain), port \(options.port)"
            }
            s += "  \(r.address): \(route)\n"
        }
        return s
    }
}
