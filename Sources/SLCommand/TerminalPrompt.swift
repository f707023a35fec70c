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
    private let fd: Int32
    private let tool: String

    /// Opens the controlling terminal; nil when the process has none.
    public init?(tool: String) {
        let fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        guard isatty(fd) == 1 else { close(fd); return nil }
        self.fd = fd
        self.tool = tool
    }

    deinit { close(fd) }

    public func askEscrowQuestion(recipient: String) throws -> PromptedQuestion? {
        say("\(tool): no secure method is known for \(recipient).\n")
        say("It can be sent by escrow: the recipient must answer a question to read it.\n")
        let question = readLine(prompt: "Question for \(recipient) (empty to skip): ", echo: true)
        guard let question, !question.isEmpty else { return nil }
        let answer = readLine(prompt: "Answer (not shown): ", echo: false)
        say("\n")
        guard let answer, !answer.isEmpty else { return nil }
        let save = readLine(prompt: "Save this question to your address book? [y/N] ", echo: true)?.lowercased()
        return PromptedQuestion(question: question, answer: answer, save: save == "y" || save == "yes")
    }

    private func say(_ s: String) { try? FileDescriptorIO.writeAll(fd, Array(s.utf8)) }

    private func readLine(prompt: String, echo: Bool) -> String? {
        say(prompt)
        var saved = termios()
        let restore = !echo && tcgetattr(fd, &saved) == 0
        if restore {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(fd, TCSAFLUSH, &quiet)
        }
        defer { if restore { tcsetattr(fd, TCSAFLUSH, &saved) } }
        var line = Bytes()
        var b: UInt8 = 0
        while read(fd, &b, 1) == 1 {
            if b == 0x0A { return String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces) }
            if b != 0x0D { line.append(b) }
            if line.count > 4096 { return nil }
        }
        return nil
    }
}
