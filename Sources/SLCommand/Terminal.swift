#if canImport(Glibc)
import Glibc
#endif
import SLMessage

/// The controlling terminal (/dev/tty), for questions and secrets: stdin and
/// stdout carry messages. A secret is read with echo off, and the line break the
/// user typed is echoed afterwards.
public final class Terminal {
    private let fd: Int32
    public init?() {
        let fd = Glibc.open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        guard isatty(fd) == 1 else { close(fd); return nil }
        self.fd = fd
    }
    deinit { close(fd) }

    public func say(_ s: String) { try? FileDescriptorIO.writeAll(fd, Array(s.utf8)) }

    public func ask(_ prompt: String, echo: Bool) -> String? {
        // Echo goes off before the prompt appears, not after: TCSAFLUSH drops what
        // was typed before the change, which must not be the answer itself.
        var saved = termios()
        let restore = !echo && tcgetattr(fd, &saved) == 0
        if restore {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(fd, TCSAFLUSH, &quiet)
        }
        defer {
            if restore { tcsetattr(fd, TCSAFLUSH, &saved); try? FileDescriptorIO.writeAll(fd, [0x0A]) }
        }
        say(prompt)
        var line: [UInt8] = []
        var b: UInt8 = 0
        while read(fd, &b, 1) == 1 {
            if b == 0x0A { return String(decoding: line, as: UTF8.self) }
            if b != 0x0D { line.append(b) }
            if line.count > 4096 { return nil }
        }
        return nil
    }
}
