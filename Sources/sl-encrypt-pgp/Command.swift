import ArgumentParser
import SLCommand
import SLMessage

/// sl-encrypt-pgp: PGP/MIME encryption; keys chosen by GnuPG (GPGME), encrypted with
/// librnp in process. See sl-encrypt-pgp(1).
@main
struct SLEncryptPGP: ParsableCommand {
    static func main() { CommandMain.run(SLEncryptPGP.self, tool: "sl-encrypt-pgp") }

    static let configuration = CommandConfiguration(
        commandName: "sl-encrypt-pgp",
        abstract: "Encrypt messages as PGP/MIME (RFC 3156) with protected headers (RFC 9788).",
        discussion: """
        In a pipeline, encrypts the messages that sl-classify routed to PGP, to the keys \
        their routing names, and passes every other message through unchanged. With -r, \
        encrypts every message on stdin to the named recipients. Reads one message or an \
        mboxrd stream; writes mboxrd, or one bare message for one bare message in. \
        See sl-encrypt-pgp(1).
        """)

    @Option(name: .customShort("r"), help: ArgumentHelp("Encrypt every message to this recipient (repeatable).", valueName: "address"))
    var recipients: [String] = []

    @Option(name: .long, help: ArgumentHelp("GnuPG home (default: pgp_homedir in sl.conf, then $GNUPGHOME, then ~/.gnupg).", valueName: "dir"))
    var homedir: String?

    @OptionGroup var config: ConfigurationOption

    @Flag(inversion: .prefixedNo, help: "Sign with the sender's key before encrypting (default: pgp_sign in sl.conf, else no).")
    var sign: Bool?

    @Option(name: .customLong("sign-as"), help: ArgumentHelp("Sign with the secret key of this address instead of the sender's.", valueName: "address"))
    var signAs: String?

    @Flag(name: .customLong("encrypt-to-self"), inversion: .prefixedNo, help: "Also encrypt to the sender's own key (default: pgp_encrypt_to_self, else no).")
    var encryptToSelf: Bool?

    @Flag(name: .customLong("hide-recipients"), help: "Leave the recipients' key IDs out of the encrypted message.")
    var hideRecipients = false

    @Option(name: [.customShort("j"), .long], help: ArgumentHelp("Messages encrypted at once (default 1; measure with bench/pgp before raising it).", valueName: "n"))
    var jobs: Int?

    @OptionGroup var input: MessageInput

    @Flag(name: .customLong("dry-run"), help: "Change nothing: import address-book keys into a throwaway copy of the GnuPG home (for a dry run of the whole pipeline).")
    var dryRun = false

    func run() throws {
        for r in recipients {
            do { _ = try EmailAddress(parsing: r) } catch { throw UsageError("recipient \"\(r)\": \(error)") }
        }
        var tool = EncryptPGPTool()
        tool.configurationPath = config.path
        tool.homeDirectory = homedir
        tool.recipients = try recipients.map { try EmailAddress(parsing: $0).addrSpec }
        tool.sign = sign
        tool.signAs = signAs
        tool.encryptToSelf = encryptToSelf
        tool.hideRecipients = hideRecipients
        tool.stream = input.stream
        tool.dryRun = dryRun
        if let jobs {
            guard jobs >= 1 else { throw UsageError("--jobs must be at least 1") }
            tool.jobs = jobs
        }
        try tool.run()
    }
}
