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

    /// Splits an mboxrd stream into messages.
    static func messages(_ bytes: Bytes) throws -> [Message] {
        var r = MessageStreamReader(MemorySource(bytes))
        var out: [Message] = []
        while let m = try r.next() { out.append(m) }
        return out
    }
}

func bytes(_ s: String) -> Bytes { Array(s.utf8) }
