import ArgumentParser
import SLCommand

/// sl-escrow: the escrow store's administration, and `open` for recipients.
/// See sl-escrow(1).
@main
struct SLEscrow: ParsableCommand {
    static func main() { CommandMain.run(SLEscrow.self, tool: "sl-escrow") }

    static let configuration = CommandConfiguration(
        commandName: "sl-escrow",
        abstract: "Manage the escrow store: list, status, retract, purge, receipts, open, accounts.",
        discussion: """
        Links, answers and passwords are read from the terminal or from files, never \
        from the command line. See sl-escrow(1).
        """,
        subcommands: [List.self, Status.self, Retract.self, Purge.self, Receipts.self, Tracked.self, Open.self, Account.self, Verify.self,
                      Migrate.self, Copy.self])
}

struct StoreOptions: ParsableArguments {
    @OptionGroup var config: ConfigurationOption

    @Option(help: ArgumentHelp("Escrow store: a directory or a postgresql:// URI (default: escrow_store, else the state directory's escrow/).", valueName: "dir|uri"))
    var store: String?

    var tool: EscrowTool {
        var t = EscrowTool()
        t.configurationPath = config.path
        t.storeDirectory = store
        return t
    }
}

/// A message id as sl-escrow list prints it.
func checkID(_ id: String) throws {
    guard id.count == 32, id.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
        throw ValidationError("\"\(id)\" is not a message id (32 lowercase hexadecimal digits, as sl-escrow list prints)")
    }
}

func source(_ path: String?) -> EscrowTool.SecretSource? { path.map { $0 == "-" ? .file("/dev/stdin") : .file($0) } }

extension SLEscrow {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the sealed messages, newest first.")
        @OptionGroup var options: StoreOptions
        @Flag(help: "One JSON object per line.") var json = false
        func run() throws { try options.tool.list(json: json) }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One message: its recipients, who opened it when, failed attempts, locks.")
        @OptionGroup var options: StoreOptions
        @Flag(help: "One JSON object.") var json = false
        @Argument(help: "Message id.") var id: String
        func validate() throws { try checkID(id) }
        func run() throws { try options.tool.status(id: id, json: json) }
    }

    struct Retract: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Destroy a message's content and keys; opening it then says it was retracted.")
        @OptionGroup var options: StoreOptions
        @Argument(help: "Message id.") var id: String
        func validate() throws { try checkID(id) }
        func run() throws { try options.tool.retract(id: id) }
    }

    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Destroy the content and keys of expired messages (for cron).")
        @OptionGroup var options: StoreOptions
        func run() throws { try options.tool.purge() }
    }

    struct Receipts: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write read receipts for senders as an mboxrd stream for sl-deliver.")
        @OptionGroup var options: StoreOptions
        func run() throws { try options.tool.receipts() }
    }

    struct Open: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open a sealed message: writes the original message to standard output.",
            discussion: "Asks on the terminal for the link from the notice and the answer (or account password) unless files are given. A wrong answer counts as a failed attempt.")
        @OptionGroup var options: StoreOptions
        @Option(name: .customLong("link-file"), help: ArgumentHelp("Read the link from this file (- for standard input).", valueName: "file"))
        var linkFile: String?
        @Option(name: .customLong("answer-file"), help: ArgumentHelp("Read the answer from this file (its first line).", valueName: "file"))
        var answerFile: String?
        @Option(name: .customLong("password-file"), help: ArgumentHelp("Read the account password from this file (its first line).", valueName: "file"))
        var passwordFile: String?
        @Option(name: .customLong("as-sender"), help: ArgumentHelp("Open a message you sent, with your account (message center mode).", valueName: "id"))
        var asSender: String?
        func validate() throws {
            if let asSender { try checkID(asSender) }
            if asSender != nil && (linkFile != nil || answerFile != nil) { throw ValidationError("--as-sender needs no link and no answer") }
            if [linkFile, answerFile, passwordFile].filter({ $0 == "-" }).count > 1 { throw ValidationError("only one secret can come from standard input") }
        }
        func run() throws {
            try options.tool.open(link: source(linkFile) ?? .terminal, answer: source(answerFile), password: source(passwordFile), asSender: asSender)
        }
    }

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or upgrade the escrow tables of a store in PostgreSQL (escrow_store = postgresql://...).",
            discussion: "Nothing else creates them: packers and portals stop with this command's name when the schema is missing or older. Safe to run on several machines at once.")
        @OptionGroup var options: StoreOptions
        func run() throws { try options.tool.migrate() }
    }

    struct Copy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy the store (and its sealed content) into an empty store in PostgreSQL.",
            discussion: "Run sl-escrow migrate on the target first and stop packers and portals meanwhile. Nothing is decrypted. The copy is one transaction: if it fails, the target stays empty. Then set escrow_store to the URI.")
        @OptionGroup var options: StoreOptions
        @Option(help: ArgumentHelp("The target database, a libpq URI (password in ~/.pgpass, PGPASSFILE or PGPASSWORD).", valueName: "postgresql://..."))
        var to: String
        func run() throws { try options.tool.copy(to: to) }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check the store: database integrity, and every record with its sealed content.")
        @OptionGroup var options: StoreOptions
        func run() throws { try options.tool.verify() }
    }

    struct Account: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Escrow login accounts: add, remove, passwd, list.",
            subcommands: [Add.self, Remove.self, Passwd.self, ListAccounts.self])

        struct Add: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create an account (a key pair protected by its password).")
            @OptionGroup var options: StoreOptions
            @Option(name: .customLong("password-file"), help: ArgumentHelp("Read the password from this file (its first line).", valueName: "file"))
            var passwordFile: String?
            @Argument(help: "The account's address.") var address: String
            func run() throws { try options.tool.addAccount(address, password: source(passwordFile)) }
        }
        struct Remove: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove an account; messages sealed to it can no longer be opened.")
            @OptionGroup var options: StoreOptions
            @Argument(help: "The account's address.") var address: String
            func run() throws { try options.tool.removeAccount(address) }
        }
        struct Passwd: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Change an account's password (the current one is needed).")
            @OptionGroup var options: StoreOptions
            @Option(name: .customLong("old-password-file"), help: ArgumentHelp("Read the current password from this file.", valueName: "file"))
            var oldFile: String?
            @Option(name: .customLong("new-password-file"), help: ArgumentHelp("Read the new password from this file.", valueName: "file"))
            var newFile: String?
            @Argument(help: "The account's address.") var address: String
            func run() throws { try options.tool.changePassword(address, old: source(oldFile), new: source(newFile)) }
        }
        struct ListAccounts: ParsableCommand {
            static let configuration = CommandConfiguration(commandName: "list", abstract: "List the accounts.")
            @OptionGroup var options: StoreOptions
            @Flag(help: "One JSON object per line.") var json = false
            func run() throws { try options.tool.listAccounts(json: json) }
        }
    }
}
