import ArgumentParser
import Foundation
import SLCommand
import SLContacts
import SLHTTPS
import SLPolicy

/// sl-contacts: add, show, list and remove the contacts of an address book.
/// See sl-contacts(1).
@main
struct SLContactsCommand: ParsableCommand {
    static func main() { CommandMain.run(SLContactsCommand.self, tool: tool) }
    static let tool = "sl-contacts"

    static let configuration = CommandConfiguration(
        commandName: "sl-contacts",
        abstract: "Add, show, list and remove the contacts of an address book (vCard 4).",
        discussion: """
        Keys come from a file, the GnuPG keyring or the contact's web key directory; \
        certificates from a file or a message the contact signed. Escrow answers are \
        read from the terminal or a file, never from the command line. See sl-contacts(1).
        """,
        subcommands: [Add.self, Show.self, List.self, Remove.self])
}

extension SLContactsCommand {
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a contact, or with --replace change one; prints the fingerprints to confirm with the contact.")

        @Argument(help: ArgumentHelp("The address book: a .vcf file (made, mode 0600, if missing) or a directory of them.", valueName: "book"))
        var book: String
        @Argument(help: ArgumentHelp("The contact's email address.", valueName: "address"))
        var address: String

        @Option(help: ArgumentHelp("The contact's full name (the card's FN).", valueName: "full name"))
        var name: String?
        @Flag(help: "Change the card the address already has: what this command gives replaces that kind (keys, certificates, question); the rest stays.")
        var replace = false

        @Option(name: .customLong("pgp-key"), help: ArgumentHelp("The contact's OpenPGP public key (binary or armored) from this file.", valueName: "file"))
        var pgpKey: String?
        @Flag(name: .customLong("pgp-from-keyring"), help: "Export the contact's key from the GnuPG keyring: exactly one usable, fully valid key with this address.")
        var pgpFromKeyring = false
        @Option(name: .customLong("gnupg-home"), help: ArgumentHelp("The GnuPG home for --pgp-from-keyring (default $GNUPGHOME, then ~/.gnupg).", valueName: "dir"))
        var gnupgHome: String?
        @Flag(name: .customLong("pgp-from-wkd"), help: "Fetch the contact's key from their domain's web key directory over HTTPS.")
        var pgpFromWKD = false
        @Option(name: .customLong("resolve"), help: ArgumentHelp("As curl's --resolve, for --pgp-from-wkd: connect to HOST:PORT at ADDRESS instead of asking DNS (repeatable).", valueName: "host:port:address"))
        var resolve: [String] = []
        @Option(name: .customLong("ca-file"), help: ArgumentHelp("As curl's --cacert, for --pgp-from-wkd: trust the CA certificates in this PEM file instead of the system's.", valueName: "file"))
        var caFile: String?

        @Option(name: .customLong("smime-cert"), help: ArgumentHelp("The contact's S/MIME certificate (PEM or DER) from this file.", valueName: "file"))
        var smimeCert: String?
        @Option(name: .customLong("smime-from-message"), help: ArgumentHelp("Take the certificate from this S/MIME signed message the contact sent (.eml); the signature must verify.", valueName: "file"))
        var smimeFromMessage: String?

        @Option(name: .customLong("escrow-question"), help: ArgumentHelp("An escrow question for the contact; the answer is asked twice on the terminal.", valueName: "text"))
        var escrowQuestion: String?
        @Option(name: .customLong("answer-file"), help: ArgumentHelp("Read the escrow answer from this file's first line (- for standard input).", valueName: "file"))
        var answerFile: String?

        func validate() throws {
            let pgpSources = [pgpKey != nil, pgpFromKeyring, pgpFromWKD].filter { $0 }.count
            if pgpSources > 1 { throw ValidationError("give one of --pgp-key, --pgp-from-keyring and --pgp-from-wkd") }
            if smimeCert != nil && smimeFromMessage != nil { throw ValidationError("give one of --smime-cert and --smime-from-message") }
            if gnupgHome != nil && !pgpFromKeyring { throw ValidationError("--gnupg-home goes with --pgp-from-keyring") }
            if (!resolve.isEmpty || caFile != nil) && !pgpFromWKD { throw ValidationError("--resolve and --ca-file go with --pgp-from-wkd") }
            if answerFile != nil && escrowQuestion == nil { throw ValidationError("--answer-file goes with --escrow-question") }
            for r in resolve where r.split(separator: ":", omittingEmptySubsequences: false).count < 3 {
                throw ValidationError("--resolve \(r): expected HOST:PORT:ADDRESS, as curl's")
            }
        }

        func run() throws {
            var pgp: ContactsTool.PGPSource?
            if let pgpKey { pgp = .file(pgpKey) }
            if pgpFromKeyring { pgp = .keyring(home: gnupgHome) }
            if pgpFromWKD { pgp = .webKeyDirectory(HTTPSOptions(resolve: resolve, caFile: caFile)) }
            var smime: ContactsTool.SMIMESource?
            if let smimeCert { smime = .file(smimeCert) }
            if let smimeFromMessage { smime = .signedMessage(smimeFromMessage) }
            var escrow: EscrowQuestion?
            if let escrowQuestion {
                let address = (try? ContactsTool.canonicalAddress(address)) ?? address
                let answer = try SecretInput.read(file: answerFile, prompt: "Answer for \(address) to \"\(escrowQuestion)\" (not shown): ")
                escrow = EscrowQuestion(question: escrowQuestion, answer: answer)
            }
            let request = ContactsTool.AddRequest(book: book, address: address, name: name, pgp: pgp, smime: smime,
                                                  escrow: escrow, replace: replace)
            let report = try ContactsTool.add(request) { Diagnostics.warn(SLContactsCommand.tool, $0) }
            print(report, terminator: "")
            if pgp != nil || smime != nil {
                Diagnostics.warn(SLContactsCommand.tool, "confirm the fingerprints above with the contact by another way than email (a phone call) before relying on them")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One contact: fingerprints, methods, whether a question is set (never the answer).")
        @Argument(help: ArgumentHelp("The address book (file or directory).", valueName: "book")) var book: String
        @Argument(help: ArgumentHelp("The contact's email address.", valueName: "address")) var address: String
        func run() throws { print(try ContactsTool.show(book: book, address: address), terminator: "") }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every contact, one line each: addresses, methods, name.")
        @Argument(help: ArgumentHelp("The address book (file or directory).", valueName: "book")) var book: String
        @Flag(help: "One JSON object per line (addresses, name, pgpFingerprints, pinnedPGPFingerprint, smimeSHA256, escrowQuestion, methods).")
        var json = false
        func run() throws { print(try ContactsTool.list(book: book, json: json), terminator: "") }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove the address from the book; a card left without an address goes altogether.")
        @Argument(help: ArgumentHelp("The address book (file or directory).", valueName: "book")) var book: String
        @Argument(help: ArgumentHelp("The contact's email address.", valueName: "address")) var address: String
        func run() throws {
            for file in try ContactsTool.remove(book: book, address: address) {
                Diagnostics.warn(SLContactsCommand.tool, "\((try? ContactsTool.canonicalAddress(address)) ?? address) removed from \(file)")
            }
        }
    }
}
