// Shared helpers: running the real gpg and openssl to make test material, and
// throwaway directories.
import Foundation

struct CommandFailed: Error, CustomStringConvertible {
    let command: String
    let status: Int32
    let stderr: String
    var description: String { "\(command) exited \(status): \(stderr)" }
}

/// Runs a program found on PATH, returning its stdout; a non-zero exit throws with
/// stderr. stderr goes to a file, so a chatty program cannot fill a pipe and block.
@discardableResult
func run(_ program: String, _ arguments: [String], stdin: [UInt8]? = nil,
         directory: String? = nil) throws -> [UInt8] {
    let scratch = try TemporaryDirectory()
    let errPath = scratch.path + "/stderr"
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [program] + arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe()
    process.standardOutput = out
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    if let stdin {
        let inPath = scratch.path + "/stdin"
        _ = FileManager.default.createFile(atPath: inPath, contents: Data(stdin))
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: inPath))
    } else {
        process.standardInput = FileHandle.nullDevice
    }
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        throw CommandFailed(command: ([program] + arguments).joined(separator: " "),
                            status: process.terminationStatus, stderr: err)
    }
    return [UInt8](data)
}

/// A fresh directory under /tmp (short, so gpg-agent's socket path fits), removed on deinit.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/sl-test-XXXXXX".utf8CString)
        let made: UnsafeMutablePointer<CChar>? = template.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return nil }
            return mkdtemp(base)
        }
        guard let made else {
            throw CocoaError(.fileWriteUnknown)
        }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A throwaway GnuPG home. Stops the gpg-agent it started before the files go away.
final class GnuPGHome {
    let directory: TemporaryDirectory
    var path: String { directory.path }

    init() throws { directory = try TemporaryDirectory() }

    deinit { _ = try? run("gpgconf", ["--homedir", path, "--kill", "all"]) }

    @discardableResult
    func gpg(_ arguments: [String]) throws -> [UInt8] {
        try run("gpg", ["--homedir", path, "--batch", "--no-tty", "--quiet", "--passphrase", "",
                        "--pinentry-mode", "loopback"] + arguments)
    }

    @discardableResult
    /// Makes a key and returns its primary fingerprint as gpg prints it.
    func generate(_ uid: String, algorithm: String, usage: String, encryptionSubkey: String?) throws -> String {
        try gpg(["--quick-gen-key", uid, algorithm, usage, "never"])
        let fpr = try fingerprints(uid).first ?? ""
        if let encryptionSubkey {
            try gpg(["--quick-add-key", fpr, encryptionSubkey, "encr", "never"])
        }
        return fpr
    }

    /// "fpr" records of `gpg --with-colons --fingerprint`, primary key first.
    func fingerprints(_ who: String) throws -> [String] {
        let text = String(decoding: try gpg(["--with-colons", "--fingerprint", who]), as: UTF8.self)
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            return fields.first == "fpr" && fields.count > 9 ? String(fields[9]) : nil
        }
    }
}
