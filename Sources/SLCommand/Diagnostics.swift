#if canImport(Glibc)
import Glibc
#endif
import SLMessage

/// Diagnostics go to stderr, one line each, prefixed with the tool's name; stdout
/// carries messages only. Text from messages may be in an error: control characters
/// are replaced so a hostile header cannot forge extra lines in a log.
public enum Diagnostics {
    public static func line(_ tool: String, _ text: String) -> String {
        let safe = String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
        return "\(tool): \(safe)\n"
    }

    public static func warn(_ tool: String, _ text: String) {
        let l = Array(line(tool, text).utf8)
        try? FileDescriptorIO.writeAll(2, l)
    }

    /// Reports `error` in one line and exits with its sysexits code.
    public static func fail(_ tool: String, _ error: any Error) -> Never {
        let code = Sysexit(for: error)
        warn(tool, "\(error)")
        exit(code.rawValue)
    }

    public static var stderrIsTerminal: Bool { isatty(2) == 1 }
}
