#if canImport(Glibc)
import Glibc
#endif
import SLMessage

/// A secret (an escrow answer, a password) for a command: from a file's first line
/// ("-" is standard input), else asked twice on the controlling terminal without
/// echo, else, with no terminal, standard input's first line. Never from the
/// command line, where every user of the machine can read it with ps(1).
public enum SecretInput {
    public static func read(file: String?, prompt: String, again: String = "Again (not shown): ") throws -> String {
        if let file { return try firstLine(file == "-" ? "/dev/stdin" : file) }
        if let tty = Terminal() {
            guard let first = tty.ask(prompt, echo: false), !first.isEmpty else { throw UsageError("nothing entered") }
            guard let second = tty.ask(again, echo: false), second == first else {
                throw UsageError("the two entries differ; nothing was changed")
            }
            return first
        }
        return try firstLine("/dev/stdin")
    }

    /// The first line only, and never more than 64 KiB of the file: a secret is
    /// short, and /dev/zero is a file too.
    public static func firstLine(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw UsageError("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var data = Bytes()
        var chunk = Bytes(repeating: 0, count: 4096)
        while data.count < 64 << 10, !data.contains(0x0A) {
            let n = try FileDescriptorIO.read(fd, into: &chunk, count: chunk.count)
            if n == 0 { break }
            data += chunk[..<n]
        }
        let text = String(decoding: data.prefix(64 << 10), as: UTF8.self)
        var line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        if line.hasSuffix("\r") { line.removeLast() }
        guard !line.isEmpty else { throw UsageError("no secret in \(path == "/dev/stdin" ? "standard input" : path) (its first line is empty)") }
        return line
    }
}
