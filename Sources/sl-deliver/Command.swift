import ArgumentParser
import SLCommand
import SLMessage

/// sl-deliver: SMTP delivery that never loses a message and never leaks plaintext.
/// See sl-deliver(1).
@main
struct SLDeliver: ParsableCommand {
    static func main() { CommandMain.run(SLDeliver.self, tool: "sl-deliver") }

    static let configuration = CommandConfiguration(
        commandName: "sl-deliver",
        abstract: "Deliver messages over SMTP, queueing what must wait; TLS enforced for TLS-only mail.",
        discussion: """
        Reads a message or an mboxrd stream, checks all of it, then delivers each \
        message to its recipients' MX hosts (or a relay); what cannot be delivered now \
        is queued durably. Routing comes from the X-SL-* fields sl-classify wrote, or \
        sendmail-style from -f, -t and the recipients given. A domain with an MTA-STS \
        policy in enforce mode gets mail only at matching MX hosts over verified TLS; \
        otherwise it waits. Exit 0 once every message is delivered, bounced or queued. \
        See sl-deliver(1).
        """)

    @Option(name: .customShort("f"), help: ArgumentHelp("Envelope sender for unrouted input (\"\" for the null sender).", valueName: "sender"))
    var sender: String?

    @Flag(name: .customShort("t"), help: "Take recipients from To, Cc and Bcc (unrouted input), and remove Bcc.")
    var takeRecipientsFromHeaders = false

    @Flag(name: [.customShort("i"), .customLong("oi", withSingleDash: true)], help: "Accepted for sendmail compatibility (a lone dot never ends input here).")
    var ignoreDots = false

    @Flag(name: .customLong("run-queue"), help: "Retry the queued messages that are due, then exit (for cron).")
    var runQueue = false

    @Flag(help: "With --run-queue: retry every queued message now, due or not.")
    var force = false

    @Flag(name: .customLong("list-queue"), help: "List the queued messages (as mailq does), then exit.")
    var listQueue = false

    @Flag(help: "With --list-queue: one JSON object per message, for scripts.")
    var json = false

    @Option(help: ArgumentHelp("Hold a queued message: no run attempts it until --release.", valueName: "id"))
    var hold: String?

    @Option(help: ArgumentHelp("Release a held message; the next queue run attempts it.", valueName: "id"))
    var release: String?

    @Option(help: ArgumentHelp("Attempt one queued message now.", valueName: "id"))
    var retry: String?

    @Option(help: ArgumentHelp("Delete a queued message without a report.", valueName: "id"))
    var delete: String?

    @Option(help: ArgumentHelp("Delete a queued message and send its sender a delivery report.", valueName: "id"))
    var bounce: String?

    @Flag(name: .customLong("dry-run"), help: "Print who would get each message and how; queue and send nothing.")
    var dryRun = false

    @Option(help: ArgumentHelp("Send everything through this relay (default: relay in sl.conf).", valueName: "host[:port]"))
    var relay: String?

    /// --relay-tls: how TLS starts with the relay.
    enum RelayTLS: String, ExpressibleByArgument, CaseIterable {
        case implicit, starttls
    }

    @Option(name: .customLong("relay-tls"), help: ArgumentHelp("implicit (port 465) or starttls (default: by port).", valueName: "mode"))
    var relayTLS: RelayTLS?

    @Option(help: ArgumentHelp("Queue directory (default: queue_directory, else the state directory's queue/).", valueName: "dir"))
    var queue: String?

    @OptionGroup var destination: TransportOptions

    @Option(help: ArgumentHelp("Destinations delivered to at once.", valueName: "n"))
    var concurrency: Int = 10

    @Option(help: ArgumentHelp("Seconds allowed for each SMTP read or write.", valueName: "seconds"))
    var timeout: Double = 300

    @OptionGroup var config: ConfigurationOption

    @OptionGroup var input: MessageInput

    @Argument(help: ArgumentHelp("Envelope recipients for unrouted input.", valueName: "recipient"))
    var recipients: [String] = []

    func validate() throws {
        if runQueue && (dryRun || !recipients.isEmpty || takeRecipientsFromHeaders) {
            throw ValidationError("--run-queue reads no input; give no recipients, -t or --dry-run with it")
        }
        if force && !runQueue { throw ValidationError("--force goes with --run-queue") }
        if json && !listQueue { throw ValidationError("--json goes with --list-queue") }
        if listQueue && (runQueue || dryRun || !recipients.isEmpty || takeRecipientsFromHeaders) {
            throw ValidationError("--list-queue takes no input, recipients, --run-queue or --dry-run")
        }
        if concurrency < 1 || concurrency > 1000 { throw ValidationError("--concurrency must be between 1 and 1000") }
        if timeout <= 0 || timeout > 3600 { throw ValidationError("--timeout must be between 0 and 3600 seconds") }
    }

    func run() throws {
        var tool = DeliverTool()
        tool.configurationPath = config.path
        if let s = sender {
            if s.isEmpty || s == "<>" { tool.sender = "" } else {
                do { tool.sender = try EmailAddress(parsing: s).addrSpec } catch { throw UsageError("sender \"\(s)\": \(error)") }
            }
        }
        tool.recipients = try recipients.map { r in
            do { return try EmailAddress(parsing: r).addrSpec } catch { throw UsageError("recipient \"\(r)\": \(error)") }
        }
        tool.takeRecipientsFromHeaders = takeRecipientsFromHeaders
        let steering: [(QueueAction, String?)] = [(.hold, hold), (.release, release), (.retry, retry), (.delete, delete), (.bounce, bounce)]
        let chosen = steering.compactMap { action, id in id.map { (action, $0) } }
        if chosen.count > 1 { throw ValidationError("give one of --hold, --release, --retry, --delete, --bounce at a time") }
        if let (action, id) = chosen.first {
            if runQueue || listQueue || dryRun || !recipients.isEmpty || takeRecipientsFromHeaders {
                throw ValidationError("--\(action.rawValue) takes no input, recipients or other queue option")
            }
            tool.steer = (action, id)
        }
        tool.runQueue = runQueue
        tool.listQueue = listQueue ? (json ? .json : .text) : nil
        tool.force = force
        tool.dryRun = dryRun
        tool.relay = relay
        tool.relayImplicitTLS = relayTLS.map { $0 == .implicit }
        tool.queueDirectory = queue
        tool.destination = destination
        tool.concurrency = concurrency
        tool.timeout = timeout
        tool.stream = input.stream
        try tool.run()
    }
}
