#if canImport(Glibc)
import Glibc
#endif
import Foundation

public typealias QueueAction = QueueRunner.Steering
import SLCommand
import SLDelivery
import SLMessage
import SLPolicy
import SLTransport

/// sl-deliver without its argument parsing.
///
/// The whole input is read and checked, then delivered; what cannot be delivered
/// now is stored in the queue (durably) before the tool exits 0. Recipients that
/// cannot be reached stay queued for `--run-queue`; permanent failures become a delivery report to the sender;
/// TLS-only recipients without verified TLS are handed to `reroute_command` for a
/// new decision, never sent in plaintext.
public struct DeliverTool {
    public var configurationPath: String?
    public var sender: String?
    public var recipients: [String] = []
    public var takeRecipientsFromHeaders = false
    public var dryRun = false
    public var runQueue = false
    public enum Listing { case text, json }
    /// --list-queue: print the queue and exit.
    public var listQueue: Listing?
    /// --hold, --release, --retry, --delete, --bounce: one queued message.
    public var steer: (QueueAction, String)?
    public var force = false
    public var stream = StreamOptions()
    public var queueDirectory: String?
    public var relay: String?
    public var relayImplicitTLS: Bool?
    /// --dns, --port, --ca-file, --transport.
    public var destination = TransportOptions()
    public var concurrency = 10
    public var timeout: Double = 300

    public init() {}

    static let tool = "sl-deliver"

    public func run() throws {
        // A reroute command that exits early must not kill us with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        let configuration = try ConfigurationLocation.loadIfPresent(configurationPath)
        let installation = configuration?.installation ?? InstallationSettings()
        let source = configuration?.source ?? "sl.conf"
        var options = try deliveryOptions(installation, source: source)
        options.warn = { Diagnostics.warn(Self.tool, $0) }
        // RFC 8460: each session's TLS noted for `sl-tls-probe --report`.
        let sessions = installation.transport.tlsReporting && !dryRun
            ? installation.effectiveTLSReportLog.map { TLSSessionRecorder(log: TLSSessionLog(path: $0)) } : nil
        if let sessions { options.onTLSSession = { sessions.note($0) } }
        func noteSessions() {
            do { try sessions?.flush() } catch { Diagnostics.warn(Self.tool, "TLS reporting: \(error)") }
        }
        defer { noteSessions() }
        // Made before any message is taken, so a bad CA bundle is a configuration
        // error (78) rather than a queue that can never be worked.
        let deliverer = try Deliverer(options: options)
        let hostname = installation.hostname ?? localHostName()
        // A dry run needs no queue: it only says who would get what.
        let queuePath = dryRun ? nil : try queuePath(installation, source: source)
        if let queuePath {
            try StateOwner.check(queuePath, within: installation.stateDirectory, what: "the queue", tool: Self.tool)
        }
        func worker() throws -> QueueRunner {
            guard let queuePath else { throw MessageError.io("internal error: no queue in a dry run") }
            let queue = try DeliveryQueue(directory: queuePath)
            // Beside the queue, owned with it: QUEUE.delivered.
            let days = installation.delivery.recordDays
            let record = days > 0
                ? try DeliveryRecord(path: queuePath + ".delivered", window: days * 86_400, now: Date().timeIntervalSince1970)
                : nil
            let runner = QueueRunner(queue: queue, deliverer: deliverer, hostname: hostname,
                        audit: AuditLog(installation.effectiveAuditLog, tool: Self.tool), rerouteCommand: installation.delivery.rerouteCommand,
                        lifetime: installation.delivery.queueLifetime ?? DeliveryPolicy.defaultLifetime,
                        record: record, warn: { Diagnostics.warn(Self.tool, $0) })
            runner.delayWarning = installation.delivery.delayWarningHours * 3600
            return runner
        }

        if let listQueue, let queuePath {
            let entries = try DeliveryQueue(directory: queuePath).listing()
            try FileDescriptorIO.writeAll(1, Array(try DeliveryQueue.format(entries, json: listQueue == .json).utf8))
            return
        }
        // SIGTERM/SIGINT: finish what is in flight, queue the rest, exit 0.
        if !dryRun && listQueue == nil && steer == nil { StopRequest.install() }
        defer {
            if StopRequest.requested {
                Diagnostics.warn(Self.tool, "stopped on request: the deliveries in flight finished and are recorded; the rest is queued (sl-deliver --run-queue sends it)")
            }
        }
        if let (action, id) = steer {
            defer { deliverer.closeIdle() }
            let line = try worker().steer(action, id: id, now: Date().timeIntervalSince1970)
            try FileDescriptorIO.writeAll(1, Array((line + "\n").utf8))
            return
        }
        defer { deliverer.closeIdle() }
        if runQueue {
            try worker().runQueue(now: Date().timeIntervalSince1970, force: force)
            return
        }

        let filter = try StreamFilter(tool: Self.tool, options: stream)
        if dryRun {
            var out = ""
            try filter.process { message in
                let (m, envelope) = try routed(message)
                out += try QueueRunner.plan(m, envelope, options: options)
                return []
            }
            try FileDescriptorIO.writeAll(1, Array(out.utf8))
            try filter.reportRejections()
            return
        }
        // A single message (Postfix, procmail) is read and checked whole before
        // anything is sent: a failure leaves the caller's copy in charge. A stream
        // is taken in rounds (500 messages, 8 MiB or two seconds, whichever comes
        // first) and each round is delivered or queued before the next is read, so
        // a pipeline's stages work at the same time; the delivery record makes
        // feeding the same stream again after a failure safe.
        let worker = try worker()
        var intake = Intake()
        var roundStarted = Date()
        func deliverRound() throws {
            guard intake.count > 0 else { return }
            try worker.attempt(intake, now: Date().timeIntervalSince1970)
            noteSessions()
            intake = Intake()
            roundStarted = Date()
        }
        var taken = 0
        // Caught up with the input: what was taken goes now rather than waiting
        // for a full round (the stages before are slower), and a request to stop
        // is seen while waiting.
        filter.whileWaiting = {
            if StopRequest.requested { throw StoppedTaking(taken: taken) }
            do { try deliverRound() } catch { throw RoundFailed(error: error) }
        }
        do {
            try filter.process { message in
                // Asked to stop: what was taken is delivered or queued below; the
                // rest of the input stays with the caller.
                if StopRequest.requested { throw StoppedTaking(taken: taken) }
                taken += 1
                let (m, envelope) = try routed(message)
                intake.append(m, envelope: envelope)
                if intake.isFull || Date().timeIntervalSince(roundStarted) >= 2 {
                    do { try deliverRound() } catch { throw RoundFailed(error: error) }
                }
                return []
            }
        } catch let failed as RoundFailed {
            throw failed.error
        } catch {
            // Asked to stop, or a message that cannot be taken (malformed, not
            // protected): the messages before it were taken whole and go, as in
            // every other stage; the rest of the input stays with the caller.
            try deliverRound()
            throw error
        }
        // An empty stream is nothing to do, as for every tool (`sl-escrow receipts |
        // sl-deliver` from cron with no receipts). A failure upstream is seen in the
        // status of the stage that failed: sl-send exits with it.
        // Exit 0 only once every message is delivered, bounced, re-routed or durably
        // queued; a failure or crash before that leaves the caller's copy in charge.
        try deliverRound()
        try filter.reportRejections()
    }

    /// The message and its routing: as sl-classify wrote it in X-SL-* fields, or
    /// made from the sendmail-style command line (opportunistic TLS).
    func routed(_ message: Message) throws -> (Message, Envelope) {
        if let envelope = try Envelope.read(from: message.header) {
            guard !takeRecipientsFromHeaders && recipients.isEmpty else {
                throw UsageError("message \(message.index) carries X-SL routing; give no recipients and no -t")
            }
            guard envelope.method != .bounce else {
                throw MessageError.malformed("message \(message.index) is routed to bounce; sl-classify sends a delivery report instead")
            }
            if !dryRun, let problem = try DeliveryPolicy.protectionProblem(message, envelope) {
                throw UnprotectedMessage(description: "message \(message.index): \(problem); nothing sent")
            }
            return (message, envelope)
        }
        var m = message
        var rcpts = recipients
        if takeRecipientsFromHeaders {
            rcpts += try SendmailEnvelope.takeHeaderRecipients(from: &m).map(\.address.addrSpec)
        }
        var seen = Set<String>()
        rcpts = rcpts.filter { seen.insert($0.lowercased()).inserted }
        guard !rcpts.isEmpty else {
            throw MessageError.malformed("message \(message.index): no recipients (give them as arguments, use -t, or route with sl-classify)")
        }
        // The sender: -f, else the mbox From_ line's, else the From field's.
        guard let from = try sender.map(SendmailEnvelope.sender(option:)) ?? SendmailEnvelope.sender(of: m) else {
            throw MessageError.malformed("message \(message.index): no envelope sender (give -f, or -f \"\" for the null sender)")
        }
        var envelope = Envelope(sender: from, recipients: rcpts.map { Envelope.Recipient(address: $0) },
                                method: .insecure, tls: .opportunistic, fallback: .insecure)
        // The same input fed again is recognised, with or without a Message-ID.
        envelope.messageDigest = try MessageDigest.of(message)
        return (m, envelope)
    }

    func queuePath(_ installation: InstallationSettings, source: String) throws -> String {
        if let q = queueDirectory ?? installation.delivery.queueDirectory { return q }
        guard let state = installation.effectiveStateDirectory else {
            throw ConfigurationError(source, 0, "no queue directory: set queue_directory or state_directory, or HOME")
        }
        return state + "/queue"
    }

    func deliveryOptions(_ installation: InstallationSettings, source: String) throws -> DeliveryOptions {
        var o = DeliveryOptions()
        var probe = try LiveTLSCapability.options(from: installation, source: source, timeout: timeout)
        try probe.override(dns: destination.dns, port: destination.port, caFile: destination.caFile, transportMap: destination.transport,
                           mtaSTSPort: destination.mtaSTSPort, dnssecResolver: destination.dnssecResolver)
        o.dnsServer = probe.dnsServer
        o.dnssecResolver = probe.dnssecResolver
        o.transport = probe.transport
        o.port = probe.port
        o.caFile = probe.caFile
        o.heloName = probe.heloName
        o.tlsCache = installation.transport.tlsCache
        o.tlsCacheTTL = installation.transport.tlsCacheTTL
        o.mtaSTS = probe.mtaSTS
        o.timeout = timeout
        o.concurrency = concurrency
        if let spec = relay ?? installation.delivery.relay {
            o.relay = try Relay(parsing: spec, implicitTLS: relayImplicitTLS ?? installation.delivery.relayImplicitTLS,
                                credentials: installation.delivery.relayCredentials, source: source)
        }
        return o
    }

}


/// A round that could not be delivered or queued: the run ends with its error.
/// Never taken for a bad message (set aside with --reject-file): the round failed,
/// not the message being read; the run ends with the round's own error.
struct RoundFailed: SysexitReporting {
    let error: any Error
    var sysexit: Sysexit { .tempFail }
}

/// SIGTERM or SIGINT before the end of a stream: what was taken is delivered or
/// queued, the rest is not read. Exit 75: feed the same input again (the delivery
/// record skips what was delivered).
struct StoppedTaking: SysexitReporting, CustomStringConvertible {
    let taken: Int
    var sysexit: Sysexit { .tempFail }
    var description: String {
        "stopped on request after taking \(taken) message\(taken == 1 ? "" : "s") of the input; feed the same input again to send the rest (what was delivered is skipped)"
    }
}
