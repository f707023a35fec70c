import Foundation
import Testing
import SLMessage
@testable import SLPGP

/// The key-selection rules against keys in real states, made by gpg.
@Suite(.serialized) struct KeySelectionTests {
    let fx: KeyFixture
    let ring: PGPKeyring

    init() throws {
        fx = try KeyFixture.shared.get()
        ring = try PGPKeyring(homeDirectory: fx.home)
    }

    @Test(arguments: ["alice@example.org", "rsa@example.org", "ALICE@Example.ORG"])
    func usableKeysAreChosen(_ address: String) throws {
        let k = try ring.key(for: address)
        #expect(k.fingerprint == fx.fingerprints[address.lowercased()])
        #expect(!k.pinned)
    }

    @Test(arguments: [
        ("revoked@example.org", "revoked"),
        ("expired@example.org", "expired"),
        ("signonly@example.org", "no usable encryption subkey"),
        ("stranger@example.net", "validity"),
        ("nobody@example.org", "no PGP key"),
        ("twin@example.org", "2 usable PGP keys"),
    ])
    func unusableKeysAreRefusedWithTheReason(_ address: String, _ reason: String) throws {
        #expect {
            _ = try ring.key(for: address)
        } throws: { e in
            guard let e = e as? RecipientKeyError else { return false }
            return e.recipient == address && e.problem.contains(reason)
        }
    }

    @Test func addressMustMatchExactlyNotAsASubstring() throws {
        // gpg's bare-pattern search is a substring match: "cob@example.org" finds Jacob
        let jacob = try #require(try ring.context().listKeys("cob@example.org").first)
        #expect(PGPKeyring.rejection(of: jacob, for: "cob@example.org", pinned: false) == .addressMismatch)
        #expect(PGPKeyring.rejection(of: jacob, for: "jacob@example.org", pinned: false) == nil)
        #expect(throws: RecipientKeyError.self) { try ring.key(for: "cob@example.org") }
    }

    @Test func aPinnedFingerprintStandsInForValidity() throws {
        let fpr = try #require(fx.fingerprints["stranger@example.net"])
        let k = try ring.key(for: "stranger@example.net", pinnedFingerprint: fpr.lowercased())
        #expect(k.pinned && k.fingerprint == fpr)
        // a pin never rescues a revoked key, nor a key for another address
        let rev = try #require(fx.fingerprints["revoked@example.org"])
        #expect(throws: RecipientKeyError.self) { try ring.key(for: "revoked@example.org", pinnedFingerprint: rev) }
        #expect(throws: RecipientKeyError.self) { try ring.key(for: "alice@example.org", pinnedFingerprint: fpr) }
        #expect(throws: RecipientKeyError.self) { try ring.key(for: "stranger@example.net", pinnedFingerprint: String(repeating: "A", count: 40)) }
    }

    @Test func encryptedOutputDecryptsWithGPG() throws {
        let plain = Array("Content-Type: text/plain; charset=utf-8\r\n\r\nGrüße, 8-bit body\r\n".utf8)
        let input = try TemporaryFile.openUnlinked()
        let output = try TemporaryFile.openUnlinked()
        defer { close(input); close(output) }
        try FileDescriptorIO.writeAll(input, plain)
        lseek(input, 0, SEEK_SET)
        let keys = try ["alice@example.org", "rsa@example.org"].map { try ring.key(for: $0) }
        try ring.encrypt(input: input, output: output, to: keys, signers: [try ring.signingKey(for: "rsa@example.org")])
        lseek(output, 0, SEEK_SET)
        var cipher = Bytes()
        var buf = Bytes(repeating: 0, count: 65536)
        while case let n = try FileDescriptorIO.read(output, into: &buf, count: buf.count), n > 0 { cipher += buf[0..<n] }
        #expect(String(decoding: cipher.prefix(27), as: UTF8.self) == "-----BEGIN PGP MESSAGE-----")
        let status = fx.home + "/../status-\(UUID().uuidString)"
        let decrypted = try fx.gpg(fx.home, ["--status-file", status, "--decrypt"], stdin: cipher)
        #expect(decrypted == plain)
        let statusText = try String(contentsOfFile: status, encoding: .utf8)
        #expect(statusText.contains("GOODSIG"))
        #expect(statusText.contains("VALIDSIG \(fx.fingerprints["rsa@example.org"]!)") || statusText.contains("VALIDSIG"))
        // encrypted to both recipients: two public-key encrypted session key packets
        #expect(statusText.components(separatedBy: "ENC_TO ").count - 1 == 2)
    }
}
