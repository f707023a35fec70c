#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage
import SLPolicy

/// Step 6 of the decision at the controlling terminal (/dev/tty), never stdin, which
/// carries the message. Without a terminal (Postfix, procmail, cron) there is no
/// prompt and the decision falls through to the fallback.
public final class TerminalPrompt: SenderPrompt {
    private let terminal: Terminal
    private let tool: String

    /// Opens the controlling terminal; nil when the process has none.
    public init?(tool: String) {
        guard let terminal = Terminal() else { return nil }
        self.terminal = terminal
        self.tool = tool
    }

    public func askEscrowQuestion(recipient: String) throws -> PromptedQuestion? {
        say("\(tool): no secure method is known for \(recipient).\n")
        say("It can be sent by escrow: the recipient must answer a question to read it.\n")
        let question = readLine(prompt: "Question for \(recipient) (empty to skip): ", echo: true)
        guard let question, !question.isEmpty else { return nil }
        let answer = readLine(prompt: "Answer (not shown): ", echo: false)
        guard let answer, !answer.isEmpty else { return nil }
        let save = readLine(prompt: "Save this question to your address book? [y/N] ", echo: true)?.lowercased()
        return PromptedQuestion(question: question, answer: answer, save: save == "y" || save == "yes")
    }

    private func say(_ s: String) { terminal.say(s) }

    private func readLine(prompt: String, echo: Bool) -> String? {
        terminal.ask(prompt, echo: echo)?.trimmingCharacters(in: .whitespaces)
    }
}
