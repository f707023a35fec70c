import Foundation
import Testing

/// The example scripts a newcomer runs first, run the way they would run them: from
/// a shell whose PATH has the installed tools (as `make demo` gives) in front of
/// /usr/bin:/bin, with a HOME of their own. (examples/postfix-master.cf and
/// examples/procmailrc are run by GatewayTests as their real callers run them.)
@Suite(.serialized) struct ExamplesTests {
    /// The environment the demo gives what it starts (make demo puts the installed
    /// tools first on PATH), which sl-portal passes on to portal_submit_command.
    func demoEnvironment() throws -> [String] {
        let env = ["PATH": try Installed.prefix.get() + "/bin:/usr/bin:/bin", "HOME": try Tools.scratch().path,
                   "TMPDIR": NSTemporaryDirectory()]
        return env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }

    func runExample(_ name: String) throws -> ToolRun {
        try Tools.runCommand(["env", "-i"] + (try demoEnvironment()) + [Tools.examples.appendingPathComponent(name).path], stdin: [])
    }

    /// demo-submit as its real caller runs it: sl-portal, started by the demo from
    /// examples/, with the demo's environment, the reply on standard input and
    /// `-f REPLIER -- SENDER` as arguments. It keeps the reply and shows it to
    /// sl-send --dry-run (so serialized: the demo writes the same /tmp files).
    @Test func theDemoSubmitCommandKeepsTheReplyAndShowsItsRoute() throws {
        let reply = bytes("From: grace@legacy.example\nTo: alice@clinic.example\nSubject: Re: results\nDate: Mon, 30 Nov 2026 09:00:00 +0000\nMessage-ID: <reply-test@mx.clinic.example>\n\nThank you.\n")
        try? FileManager.default.removeItem(atPath: "/tmp/sl-demo-reply.txt")
        let run = try Tools.runCommand(["env", "-i"] + (try demoEnvironment()) + [
            "sh", "-c", "cd \"$1\" && exec \"$1/demo-submit\" -f grace@legacy.example -- alice@clinic.example", "sh", Tools.examples.path,
        ], stdin: reply)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(FileManager.default.contents(atPath: "/tmp/sl-demo-reply.eml").map(Array.init) == reply)
        let route = (try? String(contentsOfFile: "/tmp/sl-demo-reply.txt", encoding: .utf8)) ?? ""
        #expect(route.contains("<reply-test@mx.clinic.example>: from <grace@legacy.example>") &&
                route.contains("alice@clinic.example: MX of clinic.example"), "\(route)")
        // A stage that fails is the command's failure, so the portal says "not sent".
        let failing = try Tools.runCommand(["env", "-i"] + (try demoEnvironment()) + [
            "sh", "-c", "cd \"$1\" && exec \"$1/demo-submit\" -f grace@legacy.example", "sh", Tools.examples.path,
        ], stdin: reply)
        #expect(failing.status == 64, "\(failing.status) \(failing.stderr)")
    }

    @Test func encryptAloneRoundTripsThroughGPG() throws {
        let run = try runExample("encrypt-alone")
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdoutText.contains("Subject: [...]") && run.stdoutText.contains("Subject: Test results for your appointment"), "\(run.stdoutText)")
    }

    @Test func encryptSMIMEAloneRoundTripsThroughOpenSSL() throws {
        let run = try runExample("encrypt-smime-alone")
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdoutText.contains("smime-type=enveloped-data") && run.stdoutText.contains("HP-Outer: From: Dr. Alice Smith"), "\(run.stdoutText)")
    }

    /// The README's first command ends in this script.
    @Test func theDemoRunsTheWholePipelineAndSlSend() throws {
        let run = try runExample("run-demo")
        #expect(run.status == 0, "\(run.stderr)")
        let out = run.stdoutText
        #expect(out.contains("bob@example.org              pgp"), "\(out)")
        #expect(out.contains("-----BEGIN PGP MESSAGE-----"))
        #expect(out.contains("== Erin opens hers") && out.contains("From: Dr. Alice Smith <alice@clinic.example>"))
        // sl-portal on loopback: the link a recipient opens, and the message through it.
        #expect(out.contains("here the portal serves:  http://127.0.0.1:"), "\(out)")
        #expect(out.contains("question asked: What is your patient number?"), "\(out)")
        #expect(out.contains("message page: Subject: Test results for your appointment"), "\(out)")
        // Grace's reply from the message page, threaded, shown to sl-send --dry-run.
        #expect(out.contains("portal: Your reply to alice@clinic.example is on its way"), "\(out)")
        #expect(out.contains("reply: In-Reply-To: <demo-1@clinic.example>") && out.contains("reply: Subject: Re: Test results"), "\(out)")
        #expect(out.contains("sl-send --dry-run:   alice@clinic.example: MX of clinic.example"), "\(out)")
        #expect(out.contains("sl-portal: stopped"), "\(out)")
        let send = try #require(out.range(of: "sl-send --dry-run")).upperBound
        for who in ["dave@partner.example", "bob@example.org", "grace@legacy.example", "lab@lab.partner.example", "alice@clinic.example"] {
            #expect(out[send...].contains("  \(who): MX of"), "\(who) in the sl-send dry run")
        }
        #expect(run.stderr.contains("carol@example.net left out"), "\(run.stderr)")
    }
}
