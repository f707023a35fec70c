import ArgumentParser
import SLCommand
import SLPolicy
import SLPortal

/// sl-portal: the web site escrow recipients open their messages on (question and
/// login mode, accounts and the message center; HTTPS with its own certificate, or
/// plain HTTP on loopback behind a reverse proxy). See sl-portal(8).
@main
struct SLPortalCommand: ParsableCommand {
    static func main() { CommandMain.run(SLPortalCommand.self, tool: "sl-portal") }

    static let configuration = CommandConfiguration(
        commandName: "sl-portal",
        abstract: "Serve the escrow portal over HTTPS, or over HTTP on a loopback address behind a TLS reverse proxy.",
        discussion: "Recipients open the links in their notices here (the sender's question, or an account password), read the message, download its attachments, and with an account use the message center. Listens on portal_listen and serves under the path of escrow_url; one log line per request on standard error; stops cleanly on SIGTERM. See sl-portal(8).")

    @OptionGroup var config: ConfigurationOption

    @Option(help: ArgumentHelp("Escrow store: a directory or a postgresql:// URI (default: escrow_store, else the state directory's escrow/).", valueName: "dir|uri"))
    var store: String?

    func run() throws {
        let configuration = try ConfigurationLocation.loadIfPresent(config.path) ?? Configuration()
        try Portal(configuration.installation, source: configuration.source, storeDirectory: store).run()
    }
}
