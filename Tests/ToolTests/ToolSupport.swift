import Foundation
import SLMessage

/// Runs the built binaries the way a pipeline does: stdin from a file, stdout and
/// stderr to files (no pipe can fill up and deadlock), no controlling terminal.
struct ToolRun {
    var status: Int32
    var signalled: Bool
    var stdout: Bytes
    var stderr: String
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

enum Tools {
    /// .build/<triple>/debug — where `swift build` put the executables under test.
    static var binDirectory: URL {
        let bundle = Bundle.main.bundleURL
        if FileManager.default.fileExists(atPath: bundle.appendingPathComponent("sl-classify").path) { return bundle }
        return bundle.deletingLastPathComponent()
    }

    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static var examples: URL { repository.appendingPathComponent("examples") }

    /// Set by make check-sanitizers (to thread or address): the tools' peak RSS is
    /// then mostly the sanitizer's shadow memory and quarantine, so the memory
    /// bounds are not checked; the runs themselves still are.
    static var underSanitizer: Bool { ProcessInfo.processInfo.environment["SL_TEST_SANITIZER"] != nil }

    /// How many times slower the tools run than in a plain debug build (set by make
    /// check-sanitizers): waits that let a tool get somewhere stretch by it.
    static var slowdown: Double { Double(ProcessInfo.processInfo.environment["SL_TEST_SLOWDOWN"] ?? "").map { max(1, $0) } ?? 1 }

    /// What tests leave for a reviewer to look at (screenshots): .build/test-output.
    static var outputDirectory: URL {
        let d = repository.appendingPathComponent(".build/test-output")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    static func scratch() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("sl-tool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    static func run(_ tool: String, _ args: [String], stdin: Bytes, env: [String: String] = [:],
                    wrapper: [String] = []) throws -> ToolRun {
        let binary = binDirectory.appendingPathComponent(tool).path
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "SL_CONFIG")
        for (k, v) in env { environment[k] = v }
        return try execute(wrapper + [binary] + args, stdin: stdin, environment: environment)
    }

    /// Runs any command (found on PATH) the same way, for the peers: gpg, openssl.
    static func runCommand(_ argv: [String], stdin: Bytes) throws -> ToolRun {
        try execute(argv, stdin: stdin, environment: ProcessInfo.processInfo.environment)
    }

    private static func execute(_ argv: [String], stdin: Bytes, environment: [String: String]) throws -> ToolRun {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let inURL = dir.appendingPathComponent("in"), outURL = dir.appendingPathComponent("out"), errURL = dir.appendingPathComponent("err")
        try Data(stdin).write(to: inURL)
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        p.environment = environment
        p.standardInput = try FileHandle(forReadingFrom: inURL)
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        try p.run()
        p.waitUntilExit()
        return ToolRun(status: p.terminationStatus, signalled: p.terminationReason == .uncaughtSignal,
                       stdout: Array(try Data(contentsOf: outURL)),
                       stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }

    /// The objects of a JSON-lines file (the audit log, the TLS session log); none
    /// when the file does not exist. A line that is not a JSON object fails the test.
    static func jsonLines(_ path: String) throws -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw UsageFailure("\(path): not a JSON object: \(line.prefix(200))")
            }
            return object
        }
    }

    /// Splits an mboxrd stream into messages.
    static func messages(_ bytes: Bytes) throws -> [Message] {
        var r = MessageStreamReader(MemorySource(bytes))
        var out: [Message] = []
        while let m = try r.next() { out.append(m) }
        return out
    }
}

func bytes(_ s: String) -> Bytes { Array(s.utf8) }

/// The tools installed as `make install` lays them out (binaries and bin-scripts
/// side by side in PREFIX/bin), in a scratch prefix every user can read: what
/// Postfix pipe(8), procmail and cron run. Made once per test process.
enum Installed {
    static let prefix: Result<String, any Error> = Result {
        let prefix = try Tools.scratch().appendingPathComponent("prefix").path
        let bin = prefix + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let binaries = ["sl-classify", "sl-encrypt-pgp", "sl-encrypt-smime", "sl-escrow-pack", "sl-deliver", "sl-escrow", "sl-tls-probe", "sl-portal"]
        let scripts = try FileManager.default.contentsOfDirectory(atPath: Tools.repository.appendingPathComponent("bin-scripts").path)
            .filter { $0.hasPrefix("sl-") }
        var argv = ["install", "-m", "0755"] + binaries.map { Tools.binDirectory.appendingPathComponent($0).path }
        argv += scripts.map { Tools.repository.appendingPathComponent("bin-scripts/\($0)").path }
        let r = try Tools.runCommand(argv + [bin], stdin: [])
        guard r.status == 0 else { throw UsageFailure("install: \(r.stderr)") }
        return prefix
    }

    static func bin(_ tool: String) throws -> String { try prefix.get() + "/bin/" + tool }
}

/// The mail user Postfix's pipe(8), procmail and cron run sl as in these tests
/// (`sl`, as in the examples; `make test-deps` creates it).
enum MailUser {
    static let name = "sl"

    /// Runs `argv` as the mail user with exactly the environment `env` (as pipe(8)
    /// and cron give: PATH=/usr/bin:/bin, no HOME) and umask 077, from `/`.
    static func run(_ argv: [String], stdin: Bytes, env: [String: String] = ["PATH": "/usr/bin:/bin"]) throws -> ToolRun {
        let assignments = env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let script = "umask 077; cd /; exec \"$@\""
        return try Tools.runCommand(["runuser", "-u", name, "--", "env", "-i"] + assignments + ["sh", "-c", script, "sh"] + argv,
                                    stdin: stdin)
    }

    /// Gives `paths` (recursively) to the mail user.
    static func own(_ paths: String...) throws {
        let r = try Tools.runCommand(["chown", "-R", "\(name):\(name)"] + paths, stdin: [])
        guard r.status == 0 else { throw UsageFailure("chown: \(r.stderr)") }
    }
}
