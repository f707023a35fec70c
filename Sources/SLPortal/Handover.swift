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
                    // The complaint is read while the message is written, so a
                    // command that talks a lot before reading cannot block us.
                    let complaint = Complaint()
                    let reader = Thread { complaint.data = stderr.fileHandleForReading.readDataToEndOfFile() }
                    reader.start()
                    try? stdin.fileHandleForWriting.write(contentsOf: Data(message))
                    try? stdin.fileHandleForWriting.close()
                    process.waitUntilExit()
                    while !complaint.done { usleep(1000) }
                    guard process.terminationReason == .exit, process.terminationStatus == 0 else {
                        let line = String(decoding: complaint.data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
                        throw Failed(description: "\((argv[0] as NSString).lastPathComponent) exited \(process.terminationStatus): \(line)")
                    }
                })
            }
        }
    }

    final class Complaint: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: Data?
        var data: Data {
            get { lock.withLock { stored ?? Data() } }
            set { lock.withLock { stored = newValue } }
        }
        var done: Bool { lock.withLock { stored != nil } }
    }
}
