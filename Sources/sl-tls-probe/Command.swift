import ArgumentParser
import SLCommand

/// sl-tls-probe: may mail to a domain travel as TLS-only? See sl-tls-probe(1).
@main
struct SLTLSProbe: ParsableCommand {
    static func main() { CommandMain.run(SLTLSProbe.self, tool: "sl-tls-probe") }

    static let configuration = CommandConfiguration(
        commandName: "sl-tls-probe",
        abstract: "Probe the MX hosts of domains for STARTTLS and a verifiable certificate.",
        discussion: """
        For each domain (or the domain of each address): looks up its MX hosts (or the \
        transport table's next hop), connects to each, says EHLO, STARTTLS and EHLO \
        again, and verifies the certificate against the host name — or, with a trusted \
        validating resolver (--dnssec-resolver), against the host's DNSSEC-validated \
        TLSA records (DANE, RFC 7672). A domain's MTA-STS policy (RFC 8461; TXT \
        _mta-sts.DOMAIN, fetched from https://mta-sts.DOMAIN) in enforce mode keeps it \
        verified only when every host in use matches the policy. Verdicts: dane, \
        verified, encrypted, none, unreachable. Exit 0 when every domain was reached, 75 \
        when any was unreachable. A TLS cache in PostgreSQL (tls_cache = postgresql://...) \
        needs its schema made once with --migrate. With --report, writes yesterday's RFC 8460 TLS reports \
        (from sl-deliver's tls_reporting notes) as mail for sl-deliver. See sl-tls-probe(1).
        """)

    @Argument(help: ArgumentHelp("Domains or addresses; - reads a list from stdin.", valueName: "domain|address"))
    var targets: [String] = []

    @Flag(help: "Read a message (or an mbox stream) on stdin and probe its recipients' domains.")
    var message = false

    @Flag(help: "Print one JSON object per domain (JSON lines) instead of text.")
    var json = false

    @Flag(help: "Fill the TLS cache (tls_cache in sl.conf) and print a one-line summary; for cron.")
    var warm = false

    @Flag(name: .customLong("update-cache"), help: "Also record the verdicts in the TLS cache.")
    var updateCache = false

    @Flag(help: "Answer from the TLS cache where it has an unexpired verdict; probe (and record) only the rest.")
    var cached = false

    @Flag(help: "Write the RFC 8460 TLS reports of a day (yesterday, UTC) as an mbox stream for sl-deliver; for cron.")
    var report = false

    @Flag(help: "Create or migrate the schema of a TLS cache in PostgreSQL (tls_cache = postgresql://...); nothing else does.")
    var migrate = false

    @Option(help: ArgumentHelp("With --report: the day to report, YYYY-MM-DD (UTC).", valueName: "date"))
    var day: String?

    @OptionGroup var destination: TransportOptions

    @Option(help: ArgumentHelp("Seconds allowed per domain.", valueName: "seconds"))
    var timeout: Double = 30

    @Option(help: ArgumentHelp("Domains probed at once.", valueName: "n"))
    var concurrency: Int = 20

    @OptionGroup var config: ConfigurationOption

    @Flag(name: .customLong("single-message"), help: "With --message: the input is one message, not an mbox stream.")
    var singleMessage = false

    func validate() throws {
        if migrate {
            if report || message || !targets.isEmpty || json || warm || updateCache || cached || day != nil {
                throw ValidationError("--migrate takes no domains and no other mode")
            }
            return
        }
        if report {
            if message || !targets.isEmpty || json || warm || updateCache || cached {
                throw ValidationError("--report takes no domains and no other mode (--message, --json, --warm, --update-cache, --cached)")
            }
            return
        }
        if day != nil { throw ValidationError("--day goes with --report") }
        if message && !targets.isEmpty { throw ValidationError("--message reads stdin; give no domains with it") }
        if !message && targets.isEmpty { throw ValidationError("give domains or addresses, - for a list on stdin, or --message") }
        if timeout <= 0 || timeout > 3600 { throw ValidationError("--timeout must be between 0 and 3600 seconds") }
        if concurrency < 1 || concurrency > 1000 { throw ValidationError("--concurrency must be between 1 and 1000") }
    }

    func run() throws {
        if migrate {
            let status = try TLSProbeTool.migrate(configurationPath: config.path)
            if status != .ok { throw ExitCode(status.rawValue) }
            return
        }
        if report {
            let status = try TLSReportTool(configurationPath: config.path, day: day, destination: destination).run()
            if status != .ok { throw ExitCode(status.rawValue) }
            return
        }
        var tool = TLSProbeTool()
        tool.configurationPath = config.path
        tool.input = message ? .message : .arguments(targets)
        tool.json = json
        tool.warm = warm
        tool.updateCache = updateCache
        tool.cached = cached
        tool.destination = destination
        tool.timeout = timeout
        tool.concurrency = concurrency
        tool.singleMessage = singleMessage
        let status = try tool.run()
        if status != .ok { throw ExitCode(status.rawValue) }
    }
}
