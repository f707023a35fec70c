import Foundation
import Testing
import SLDelivery
import SLMessage

/// What the documentation says, held against what the tools do: every option a
/// tool's --help lists is in its man page, every audit outcome is documented, the
/// pages agree with each other and with the code, and the shipped examples do not
/// teach what the pages warn against.
@Suite struct DocumentationTests {
    static func page(_ path: String) throws -> String {
        try String(contentsOf: Tools.repository.appendingPathComponent("man/" + path), encoding: .utf8)
    }

    static let tools = ["sl-classify", "sl-encrypt-pgp", "sl-encrypt-smime", "sl-escrow-pack", "sl-deliver", "sl-tls-probe"]

    @Test(arguments: tools)
    func everyOptionInHelpIsInTheManPage(_ tool: String) throws {
        let help = try Tools.run(tool, ["--help"], stdin: [])
        #expect(help.status == 0)
        let page = try Self.page("man1/\(tool).1")
        let names = try Regex("--([a-z][a-z0-9-]*[a-z0-9])")
        let options = Set(help.stdoutText.matches(of: names).map { String(help.stdoutText[$0.range].dropFirst(2)) })
        #expect(!options.isEmpty)
        for o in options.sorted() where o != "help" && o != "version" {
            #expect(page.contains("Fl -\(o)") || page.contains("-\(o)"), "\(tool) --\(o) is not in \(tool)(1)")
        }
    }

    /// sl-contacts has subcommands: each one's options are in sl-contacts(1), and
    /// the tool is installed, listed in the README and named in sl.conf(5).
    @Test(arguments: ["add", "show", "list", "remove"])
    func everyOptionOfSlContactsIsInItsManPage(_ subcommand: String) throws {
        let help = try Tools.run("sl-contacts", [subcommand, "--help"], stdin: [])
        #expect(help.status == 0)
        let page = try Self.page("man1/sl-contacts.1")
        #expect(page.contains(".Cm \(subcommand)"))
        let names = try Regex("--([a-z][a-z0-9-]*[a-z0-9])")
        for o in Set(help.stdoutText.matches(of: names).map { String(help.stdoutText[$0.range].dropFirst(2)) }) where o != "help" && o != "version" {
            #expect(page.contains("Fl -\(o)"), "sl-contacts \(subcommand) --\(o) is not in sl-contacts(1)")
        }
        let makefile = try String(contentsOf: Tools.repository.appendingPathComponent("Makefile"), encoding: .utf8)
        #expect(makefile.split(separator: "\n").contains { $0.hasPrefix("TOOLS") && $0.contains(" sl-contacts") })
        #expect(try String(contentsOf: Tools.repository.appendingPathComponent("README.md"), encoding: .utf8).contains("sl-contacts(1)"))
        #expect(try Self.page("man5/sl.conf.5").contains(".Xr sl-contacts 1\nwrites these cards."))
    }

    /// sl-escrow's subcommands, each with its options, are in sl-escrow(1).
    @Test(arguments: [["list"], ["status"], ["retract"], ["purge"], ["receipts"], ["tracked"], ["open"], ["verify"],
                      ["migrate"], ["copy"], ["account", "add"], ["account", "remove"], ["account", "passwd"], ["account", "list"]])
    func everySubcommandOfSlEscrowIsInItsManPage(_ subcommand: [String]) throws {
        let help = try Tools.run("sl-escrow", subcommand + ["--help"], stdin: [])
        #expect(help.status == 0, "\(help.stderr)")
        let page = try Self.page("man1/sl-escrow.1")
        #expect(page.contains(".Cm \(subcommand.joined(separator: " "))"), "sl-escrow \(subcommand) is not in sl-escrow(1)")
        let names = try Regex("--([a-z][a-z0-9-]*[a-z0-9])")
        for o in Set(help.stdoutText.matches(of: names).map { String(help.stdoutText[$0.range].dropFirst(2)) }) where o != "help" && o != "version" {
            #expect(page.contains("Fl -\(o)"), "sl-escrow \(subcommand) --\(o) is not in sl-escrow(1)")
        }
    }

    @Test func slSendsOptionsAreInItsManPage() throws {
        let help = try Tools.runCommand([try Installed.bin("sl-send"), "--help"], stdin: [])
        #expect(help.status == 0 && help.stdoutText.hasPrefix("usage: sl-send"))
        let page = try Self.page("man1/sl-send.1")
        for o in ["config", "single-message", "no-ask", "dry-run"] {
            #expect(help.stdoutText.contains("--\(o)") && page.contains("Fl -\(o)"), "--\(o)")
        }
    }

    @Test func everyAuditOutcomeOfSlDeliverIsDocumented() throws {
        let page = try Self.page("man1/sl-deliver.1")
        for outcome in RecipientResult.Outcome.allCases {
            #expect(page.contains("Cm \(outcome.rawValue)") || page.contains("Li \(outcome.rawValue)"), "outcome \(outcome.rawValue)")
        }
    }

    /// sl-classify(1) and sl.conf(5) once disagreed on whether strip_triggers
    /// removes the encrypt header: both must say what the code does (it does).
    @Test func stripTriggersRemovesTheEncryptHeaderAsBothPagesSay() throws {
        let dir = try Tools.scratch()
        let conf = dir.appendingPathComponent("sl.conf").path
        try "ask_sender = no\nfallback = insecure\ntls_probe = no\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let run = try Tools.run("sl-classify", ["--config", conf, "-t"],
                                stdin: bytes("From: a@clinic.test\nTo: b@example.org\nX-Encrypt: yes\nSubject: s\n\nbody\n"))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(!run.stdoutText.contains("X-Encrypt"))
        let classify = try Self.page("man1/sl-classify.1")
        #expect(!classify.contains("encrypt header is never removed"))
        #expect(try Self.page("man5/sl.conf.5").contains("field is removed from the message"))
    }

    /// sl.conf(5) says accounts must be in the store when a message is sealed;
    /// escrow_accounts alone is not an account.
    @Test func escrowAccountsIsDocumentedAsSlEscrowPackTreatsIt() throws {
        let conf = try Self.page("man5/sl.conf.5")
        #expect(!conf.contains("kept outside the escrow store"))
        #expect(conf.contains("The account itself must be in the store"))
    }

    /// A default answer shared by every recipient is weak: the shipped example
    /// gives each contact an answer of its own and sets no shared one.
    @Test func theExamplePolicyHasNoSharedDefaultAnswer() throws {
        let example = try String(contentsOf: Tools.examples.appendingPathComponent("sl.conf"), encoding: .utf8)
        let active = example.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.hasPrefix("#") }
        #expect(!active.contains { $0.hasPrefix("escrow_answer") }, "examples/sl.conf sets a shared escrow_answer")
        let book = try String(contentsOf: Tools.examples.appendingPathComponent("books/clinic.vcf"), encoding: .utf8)
        #expect(book.components(separatedBy: "X-SL-ESCROW-ANSWER:").count - 1 >= 3)
        #expect(try Self.page("man5/sl.conf.5").contains("one answer shared by every recipient"))
    }

    @Test func binScriptsReadmeNamesEveryScript() throws {
        let dir = Tools.repository.appendingPathComponent("bin-scripts")
        let readme = try String(contentsOf: dir.appendingPathComponent("README.md"), encoding: .utf8)
        let scripts = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("sl-") }
        #expect(!scripts.isEmpty)
        for s in scripts {
            #expect(readme.contains(s), "\(s) missing from bin-scripts/README.md")
            #expect(FileManager.default.fileExists(atPath: Tools.repository.appendingPathComponent("man/man1/\(s).1").path), "\(s)(1)")
        }
        #expect(!readme.contains("None is needed yet"))
    }
}
