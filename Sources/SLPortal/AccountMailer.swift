import Foundation
import SLMessage

/// Hands account mail (password-reset links) to sl-deliver, installed beside
/// sl-portal, with the portal's configuration: it leaves as escrow notices do,
/// by the installation's relay or MX delivery and TLS policy.
struct AccountMailer: Sendable {
    let deliver: String
    let configuration: String

    /// sl-deliver beside this executable; nil when it is not there.
    init?(configuration: String) {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let path = here.appendingPathComponent("sl-deliver").path
        guard FileManager.default.isExecutableFile(atPath: path) else { return nil }
        deliver = path
        self.configuration = configuration
    }

    /// sl-deliver did not take the mail; logged, never shown (the reset page says
    /// the same whether or not a mail went).
    struct Failed: Error, CustomStringConvertible, SysexitReporting {
        let description: String
        var sysexit: Sysexit { .tempFail }
    }

    /// Runs sl-deliver with the message on its input, off the event loops.
    func send(_ message: Message) async throws {
        let input = try message.bytes()
        let (deliver, configuration) = (self.deliver, self.configuration)
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
            DispatchQueue.global().async {
                c.resume(with: Result {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: deliver)
                    process.arguments = ["--config", configuration]
                    let stdin = Pipe(), stderr = Pipe()
                    process.standardInput = stdin
                    process.standardOutput = FileHandle.nullDevice
                    process.standardError = stderr
                    try process.run()
                    stdin.fileHandleForWriting.write(Data(input))
                    try stdin.fileHandleForWriting.close()
                    let complaint = stderr.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    guard process.terminationStatus == 0 else {
                        let line = String(decoding: complaint, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
                        throw Failed(description: "sl-deliver exited \(process.terminationStatus): \(line)")
                    }
                })
            }
        }
    }
}
