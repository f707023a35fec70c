#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import SLMessage

/// Runs a tool's command: --help and --version as usual, but every failure, usage
/// errors included, as one line on stderr and a sysexits code (ArgumentParser's own
/// output is several lines with the usage text).
public enum CommandMain {
    public static func run<C: ParsableCommand>(_ type: C.Type, tool: String) -> Never {
        do {
            var command = try type.parseAsRoot()
            try command.run()
            exit(0)
        } catch {
            let code = type.exitCode(for: error)
            if code == .success {          // --help, --version
                print(type.fullMessage(for: error))
                exit(0)
            }
            if error is ExitCode { exit(code.rawValue) }
            if code == .validationFailure {
                Diagnostics.warn(tool, type.message(for: error) + " (see \(tool) --help)")
                exit(Sysexit.usage.rawValue)
            }
            Diagnostics.fail(tool, error)
        }
    }
}
