import ArgumentParser
import SLCommand
import SLMessage
import SLPolicy

/// sl-classify: decide, per recipient, how each message leaves. See sl-classify(1).
@main
struct SLClassify: ParsableCommand {
    static func main() { CommandMain.run(SLClassify.self, tool: "sl-classify") }

    static let configuration = CommandConfiguration(
        commandName: "sl-classify",
        abstract: "Choose TLS-only, PGP, S/MIME, escrow or the fallback for every recipient of every message.",
        discussion: """
        Reads one message or an mboxrd stream on stdin and writes an mboxrd stream on \
        stdout: one copy of each message per method, carrying its envelope and routing \
        in X-SL-* fields, and a delivery report to the sender for recipients that must \
        bounce. Exit codes follow sysexits(3). See sl-classify(1), sl.conf(5) and sl(7).
        """)

    @Option(name: .customShort("f"), help: ArgumentHelp("Envelope sender (\"\" or \"<>\" for the null sender).", valueName: "sender"))
    var sender: String?

    @Flag(name: .customShort("t"), help: "Take recipients from To, Cc and Bcc, and remove Bcc.")
    var takeFromHeaders = false

    @Flag(name: [.customShort("i"), .customLong("oi", withSingleDash: true)], help: "Accepted for sendmail compatibility (a lone dot never ends input here).")
    var ignoreDots = false

    @OptionGroup var config: ConfigurationOption

    @Option(name: .long, help: ArgumentHelp("Policy account of the sender, instead of the one listing the sender's domain.", valueName: "name"))
    var account: String?

    @Flag(name: .long, help: "Print the method and reason for each recipient instead of the stream; change nothing.")
    var explain = false

    @Flag(name: .long, help: "With --explain (implied), print the decisions as a JSON array.")
    var json = false

    @OptionGroup var input: MessageInput

    @Flag(name: .customLong("no-ask"), help: "Never ask the sender for an escrow question at the terminal.")
    var noAsk = false

    @Flag(name: .customLong("require-tls"), help: "No recipient in the clear: internal, insecure and fallback decisions become TLS-only (enforced, verified TLS), the fallback bounce.")
    var requireTLS = false

    @Flag(name: .customLong("dry-run"), help: "Write the routed stream but change nothing: no audit records, no TLS cache writes, no question asked.")
    var dryRun = false

    @Argument(help: ArgumentHelp("Envelope recipients.", valueName: "recipient"))
    var recipients: [String] = []

    func validate() throws {
        if !takeFromHeaders && recipients.isEmpty {
            throw ValidationError("give recipients as arguments or use -t")
        }
    }

    func run() throws {
        var envelopeSender = sender
        if let s = sender, !s.isEmpty, s != "<>" {
            do { envelopeSender = try EmailAddress(parsing: s).addrSpec } catch { throw UsageError("sender \"\(s)\": \(error)") }
        }
        let parsed = try recipients.map { r in
            do { return try EmailAddress(parsing: r) } catch { throw UsageError("recipient \"\(r)\": \(error)") }
        }
        var tool = ClassifyTool(configurationPath: config.path,
                                envelope: EnvelopeOptions(sender: envelopeSender, recipients: parsed,
                                                          takeRecipientsFromHeaders: takeFromHeaders, account: account,
                                                          requireTLS: requireTLS))
        tool.report = json ? .json : explain ? .text : .none
        tool.ask = !noAsk && !dryRun
        tool.dryRun = dryRun
        tool.stream = input.stream
        try tool.run()
    }
}
