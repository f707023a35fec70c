import Foundation
import SLMessage

/// Runs a command with a message on its standard input, off the event loops, and
/// waits for it: how the portal hands mail to the pipeline (replies, SecureSend
/// messages through portal_submit_command; account mail through sl-deliver).
/// Exit 0 means the command took the message; anything else is a failure with
/// the command's last line of complaint, and nothing was sent.
struct Handover: Sendable {
    let argv: [String]

    struct Failed: Error, CustomStringConvertible, SysexitReporting {
        let description: String
        var sysexit: Sysexit { .tempFail }
    }

    /// The tool beside this executable (sl-send, sl-deliver), nil when absent.
    /// /proc/self/exe, not argv[0], which may be a bare name found on PATH;
    /// like sl-send's `readlink -f`, a symbolic link leads to where the file is.
    static func beside(_ tool: String) -> String? {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let here = URL(fileURLWithPath: exe).resolvingSymlinksInPath().deletingLastPathComponent()
        let path = here.appendingPathComponent(tool).path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    func run(_ message: Bytes, arguments: [String] = []) async throws {
        let argv = self.argv + arguments
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
            DispatchQueue.global().async {
                c.resume(with: Result {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: argv[0].hasPrefix("/") ? argv[0] : "/usr/bin/env")
                    process.arguments = argv[0].hasPrefix("/") ? Array(argv.dropFirst()) : argv
                    let stdin = Pipe(), stderr = Pipe()
                    process.standardInput = stdin
                    process.standardOutput = FileHandle.nullDevice
                    process.standardError = stderr
                    do { try process.run() } catch {
                        throw Failed(description: "\(argv[0]) cannot be started: \(error.localizedDescription)")
                    }
                    // The message is written from another thread while the complaint
                    // is read here, so a command that talks before it reads cannot
                    // block us (nor we it) on a full pipe.
                    let writer = stdin.fileHandleForWriting
                    DispatchQueue.global().async {
                        try? writer.write(contentsOf: Data(message))
                        try? writer.close()
                    }
                    let complaint = stderr.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    guard process.terminationReason == .exit, process.terminationStatus == 0 else {
                        let line = String(decoding: complaint, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
                        throw Failed(description: "\((argv[0] as NSString).lastPathComponent) exited \(process.terminationStatus): \(line)")
                    }
                })
            }
        }
    }
}
