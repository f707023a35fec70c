import Foundation
import SLMessage

/// A throwaway GnuPG home with keys in every state the selection rules care about,
/// made with the real gpg at test time (nothing pre-generated is trusted).
final class KeyFixture: @unchecked Sendable {
    let home: String
    let otherHome: String
    var fingerprints: [String: String] = [:]

    static let shared: Result<KeyFixture, any Error> = Result { try KeyFixture() }

    init() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("sl-pgp-\(UUID().uuidString)").path
        home = base + "/home"
        otherHome = base + "/other"
        for d in [home, otherHome] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        try gpg(home, ["--quick-gen-key", "Alice <alice@example.org>", "ed25519", "cert", "never"])
        try addEncryptionSubkey("alice@example.org", "cv25519")
        try gpg(home, ["--quick-gen-key", "Rsa <rsa@example.org>", "rsa3072", "cert,sign", "never"])
        try addEncryptionSubkey("rsa@example.org", "rsa3072")
        try gpg(home, ["--quick-gen-key", "Jacob <jacob@example.org>", "ed25519", "cert", "never"])
        try addEncryptionSubkey("jacob@example.org", "cv25519")
        // revoked: import the revocation certificate gpg wrote (strip its ":" guard)
        try gpg(home, ["--quick-gen-key", "Rev <revoked@example.org>", "ed25519", "cert", "never"])
        try addEncryptionSubkey("revoked@example.org", "cv25519")
        let revFpr = fingerprints["revoked@example.org"]!
        let revText = try String(contentsOfFile: home + "/openpgp-revocs.d/\(revFpr).rev", encoding: .utf8)
            .replacingOccurrences(of: ":-----BEGIN", with: "-----BEGIN")
        try revText.write(toFile: base + "/rev.asc", atomically: true, encoding: .utf8)
        try gpg(home, ["--import", base + "/rev.asc"])
        // expired: made in 2020 with a one-day lifetime
        let past = ["--faked-system-time", "20200101T000000"]
        try gpg(home, past + ["--quick-gen-key", "Old <expired@example.org>", "ed25519", "cert", "1d"])
        let oldFpr = try fingerprint(home, "expired@example.org")
        try gpg(home, past + ["--quick-add-key", oldFpr, "cv25519", "encr", "1d"])
        fingerprints["expired@example.org"] = oldFpr
        // no encryption subkey
        try gpg(home, ["--quick-gen-key", "Signer <signonly@example.org>", "ed25519", "sign", "never"])
        fingerprints["signonly@example.org"] = try fingerprint(home, "signonly@example.org")
        // unknown validity: made elsewhere, imported here
        try gpg(otherHome, ["--quick-gen-key", "Stranger <stranger@example.net>", "ed25519", "cert", "never"])
        let sfpr = try fingerprint(otherHome, "stranger@example.net")
        try gpg(otherHome, ["--quick-add-key", sfpr, "cv25519", "encr", "never"])
        try gpg(otherHome, ["--export", "--output", base + "/stranger.pgp", "stranger@example.net"])
        try gpg(home, ["--import", base + "/stranger.pgp"])
        fingerprints["stranger@example.net"] = sfpr
        // two usable keys for one address
        try gpg(home, ["--quick-gen-key", "Twin One <twin@example.org>", "ed25519", "cert,sign", "never"])
        try gpg(home, ["--quick-gen-key", "Twin Two <twin@example.org>", "ed25519", "cert,sign", "never"])
        for f in try allFingerprints(home, "twin@example.org") { try gpg(home, ["--quick-add-key", f, "cv25519", "encr", "never"]) }
        KeyFixture.homesToClean = [home, otherHome]
        atexit { for h in KeyFixture.homesToClean { _ = try? KeyFixture.run(["gpgconf", "--homedir", h, "--kill", "gpg-agent"]) } }
    }

    nonisolated(unsafe) static var homesToClean: [String] = []

    private func addEncryptionSubkey(_ address: String, _ algo: String) throws {
        let f = try fingerprint(home, address)
        fingerprints[address] = f
        try gpg(home, ["--quick-add-key", f, algo, "encr", "never"])
    }

    func fingerprint(_ home: String, _ address: String) throws -> String {
        guard let f = try allFingerprints(home, address).first else { throw FixtureError("no key for \(address)") }
        return f
    }

    func allFingerprints(_ home: String, _ address: String) throws -> [String] {
        let out = try gpgOutput(home, ["--with-colons", "--list-keys", "<\(address)>"])
        var result: [String] = []
        var wantFpr = false
        for line in out.split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            if f.first == "pub" { wantFpr = true }
            else if f.first == "fpr", wantFpr, f.count > 9 { result.append(String(f[9])); wantFpr = false }
        }
        return result
    }

    @discardableResult
    func gpg(_ home: String, _ args: [String], stdin: Bytes? = nil) throws -> Bytes {
        try Self.run(["gpg", "--homedir", home, "--batch", "--yes", "--quiet", "--passphrase", "", "--pinentry-mode", "loopback"] + args, stdin: stdin)
    }

    func gpgOutput(_ home: String, _ args: [String]) throws -> String {
        String(decoding: try gpg(home, args), as: UTF8.self)
    }

    static func run(_ argv: [String], stdin: Bytes? = nil) throws -> Bytes {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let input = Pipe()
        p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin)) }
        try input.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw FixtureError("\(argv.joined(separator: " ")) failed: \(String(decoding: errData, as: UTF8.self))")
        }
        return Array(data)
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
