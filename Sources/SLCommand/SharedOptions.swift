import ArgumentParser

/// `--config FILE`, as every tool takes it (see ConfigurationLocation).
public struct ConfigurationOption: ParsableArguments {
    public init() {}

    @Option(name: .customLong("config"), help: ArgumentHelp("Configuration file (default $SL_CONFIG, then /etc/sl/sl.conf).", valueName: "file"))
    public var path: String?
}

/// `--single-message`, as the stream filters take it.
public struct MessageInput: ParsableArguments {
    public init() {}

    @Flag(name: .customLong("single-message"), help: "The input is one message: a leading From line is its envelope line and no later line splits it (procmail; Postfix pipe(8) with the F flag).")
    public var singleMessage = false
}
