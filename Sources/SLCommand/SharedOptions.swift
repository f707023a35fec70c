import ArgumentParser

/// `--config FILE`, as every tool takes it (see ConfigurationLocation).
public struct ConfigurationOption: ParsableArguments {
    public init() {}

    @Option(name: .customLong("config"), help: ArgumentHelp("Configuration file (default $SL_CONFIG, then /etc/sl/sl.conf).", valueName: "file"))
    public var path: String?
}

/// `--single-message`, `--reject-file` and `--quiet`, as the stream filters take them.
public struct MessageInput: ParsableArguments {
    public init() {}

    @Option(name: .customLong("reject-file"), help: ArgumentHelp("Set malformed messages aside in this mbox file, each with its reason, and go on with the rest of the stream (exit 65 at the end if any were).", valueName: "file"))
    public var rejectFile: String?

    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "No progress line on stderr (it shows only on a terminal anyway).")
    public var quiet = false

    @Flag(name: .customLong("single-message"), help: "The input is one message: a leading From line is its envelope line and no later line splits it (procmail; Postfix pipe(8) with the F flag).")
    public var singleMessage = false
}

extension MessageInput {
    public var stream: StreamOptions { StreamOptions(singleMessage: singleMessage, rejectFile: rejectFile, quiet: quiet) }
}

/// What MessageInput parsed, as a plain value the tools carry.
public struct StreamOptions: Sendable {
    public var singleMessage = false
    public var rejectFile: String?
    public var quiet = false
    public init(singleMessage: Bool = false, rejectFile: String? = nil, quiet: Bool = false) {
        self.singleMessage = singleMessage
        self.rejectFile = rejectFile
        self.quiet = quiet
    }
}
