import ArgumentParser
import SLCommand

/// sl-escrow-pack: seal messages routed to escrow and send each recipient a notice.
/// See sl-escrow-pack(1).
@main
struct SLEscrowPack: ParsableCommand {
    static func main() { CommandMain.run(SLEscrowPack.self, tool: "sl-escrow-pack") }

    static let configuration = CommandConfiguration(
        commandName: "sl-escrow-pack",
        abstract: "Seal messages routed to escrow into the store; write a notice per recipient.",
        discussion: """
        Reads a message or an mboxrd stream. Each message that sl-classify routed to \
        escrow is encrypted into the escrow store and replaced by one notice per \
        recipient, with a link only that recipient can use (and the question to \
        answer, or a login). Other messages pass through unchanged. Answers come from \
        the configuration and address books, never from the message. \
        See sl-escrow-pack(1).
        """)

    @OptionGroup var config: ConfigurationOption

    @Option(help: ArgumentHelp("Escrow store: a directory or a postgresql:// URI (default: escrow_store, else the state directory's escrow/).", valueName: "dir|uri"))
    var store: String?

    @OptionGroup var input: MessageInput

    @Flag(name: .customLong("dry-run"), help: "Seal nothing and change nothing: write the notices with a placeholder link (for a dry run of the whole pipeline).")
    var dryRun = false

    func run() throws {
        var tool = EscrowPackTool()
        tool.configurationPath = config.path
        tool.storeDirectory = store
        tool.stream = input.stream
        tool.dryRun = dryRun
        try tool.run()
    }
}
