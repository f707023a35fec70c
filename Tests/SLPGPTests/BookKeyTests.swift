import Foundation
import Testing
import SLMessage
@testable import SLPGP

/// Keys pinned in address books are checked by librnp's own key queries, with no
/// GnuPG involved: the same refusals as for keyring keys, from key data alone.
@Suite(.serialized) struct BookKeyTests {
    let fx: KeyFixture

    init() throws { fx = try KeyFixture.shared.get() }

    /// A keyring with no GnuPG to fall back on: asking for its home fails the test.
    func bookOnlyRing() -> PGPKeyring {
        PGPKeyring(locatingHome: { throw FixtureError("GnuPG was asked for a home: a book key must not need one") })
    }

    func keyData(_ address: String) throws -> Bytes { try fx.gpg(fx.home, ["--export", "<\(address)>"]) }

    @Test func aBookKeyIsUsedWithoutGnuPGAndOpensWithGPG() throws {
        let ring = bookOnlyRing()
        let fpr = try #require(fx.fingerprints["alice@example.org"])
        // armored data, and a pin in lower case, as a hand-edited card may hold them
        let armored = try fx.gpg(fx.home, ["--armor", "--export", fpr])
        let k = try ring.bookKey(for: "Alice@Example.org", pinnedFingerprint: fpr.lowercased(), keyData: armored)
        #expect(k.fingerprint == fpr && k.pinned && k.gnupgKey == nil)
        let plain = Array("Content-Type: text/plain\r\n\r\nfrom the book\r\n".utf8)
        let input = try TemporaryFile.openUnlinked()
        let output = try TemporaryFile.openUnlinked()
        defer { close(input); close(output) }
        try FileDescriptorIO.writeAll(input, plain)
        lseek(input, 0, SEEK_SET)
        try ring.encrypt(input: input, output: output, to: [k])
        lseek(output, 0, SEEK_SET)
        var cipher = Bytes()
        var buf = Bytes(repeating: 0, count: 65536)
        while case let n = try FileDescriptorIO.read(output, into: &buf, count: buf.count), n > 0 { cipher += buf[0..<n] }
        #expect(try fx.gpg(fx.home, ["--decrypt"], stdin: cipher) == plain)
        #expect(ring.exportsToRNP == 0)
    }

    @Test(arguments: [
        ("revoked@example.org", "revoked@example.org", "revoked"),
        ("expired@example.org", "expired@example.org", "expired"),
        ("signonly@example.org", "signonly@example.org", "no usable encryption subkey"),
        // gpg's own pattern match would take Jacob's key for this substring
        ("jacob@example.org", "cob@example.org", "no user ID with exactly this address"),
        // a pin is no validity check's stand-in for another address's key
        ("alice@example.org", "bob@example.org", "no user ID with exactly this address"),
    ])
    func unusableBookKeysAreRefusedWithTheReason(_ owner: String, _ recipient: String, _ reason: String) throws {
        let fpr = try #require(fx.fingerprints[owner])
        let data = try keyData(owner)
        #expect {
            _ = try bookOnlyRing().bookKey(for: recipient, pinnedFingerprint: fpr, keyData: data)
        } throws: { e in
            guard let e = e as? RecipientKeyError else { return false }
            return e.recipient == recipient && e.problem.contains(reason)
        }
    }

    @Test func thePinChoosesAmongTheBooksKeysAndAKeyNotThereIsRefused() throws {
        let alice = try #require(fx.fingerprints["alice@example.org"])
        let rsa = try #require(fx.fingerprints["rsa@example.org"])
        let both = try keyData("alice@example.org") + keyData("rsa@example.org")
        let ring = bookOnlyRing()
        #expect(try ring.bookKey(for: "rsa@example.org", pinnedFingerprint: rsa, keyData: both).fingerprint == rsa)
        #expect(try ring.bookKey(for: "alice@example.org", pinnedFingerprint: alice, keyData: both).fingerprint == alice)
        #expect {
            _ = try bookOnlyRing().bookKey(for: "rsa@example.org", pinnedFingerprint: rsa, keyData: try keyData("alice@example.org"))
        } throws: { e in
            (e as? RecipientKeyError)?.problem.contains("holds no key \(rsa)") == true
        }
    }

    /// Key data is what a contact or a web key directory handed over: malformed,
    /// truncated, empty or hostile data is that recipient's refusal, never a crash
    /// or a failed run.
    @Test func malformedBookKeyDataIsTheRecipientsRefusal() throws {
        let rsa = try #require(fx.fingerprints["rsa@example.org"])
        let good = try keyData("rsa@example.org")
        var random = SystemRandomNumberGenerator()
        let cases: [(String, Bytes)] = [
            ("empty", []),
            ("text", Array("not a key".utf8)),
            ("truncated", Array(good.prefix(good.count / 2))),
            ("one byte short", Array(good.dropLast())),
            ("armor without a body", Array("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n".utf8)),
            ("random", (0..<4096).map { _ in UInt8.random(in: 0...255, using: &random) }),
            ("a huge packet length", [0x99, 0xFF, 0xFF] + Array(good.dropFirst(3))),
            ("the key twice over, cut", Array((good + good).prefix(good.count + 40))),
        ]
        for (what, data) in cases {
            do {
                let k = try bookOnlyRing().bookKey(for: "rsa@example.org", pinnedFingerprint: rsa, keyData: data)
                // data that still holds the whole key (a cut second copy) may be used
                #expect(what == "the key twice over, cut" && k.fingerprint == rsa, "\(what): accepted")
            } catch let e as RecipientKeyError {
                #expect(e.recipient == "rsa@example.org", "\(what)")
            }
        }
    }

    /// GnuPG's choice is put into librnp and checked again: if librnp would encrypt
    /// to a subkey GnuPG does not count usable (here: data exported before GnuPG
    /// learnt of the subkey's revocation), that recipient is refused.
    @Test func librnpMustEncryptToASubkeyGnuPGCountsUsable() throws {
        // short: gpg-agent's socket path must fit in sockaddr_un (CI's TMPDIR is long)
        let home = URL(fileURLWithPath: fx.home).deletingLastPathComponent().path + "/s-" + UUID().uuidString.prefix(6)
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        KeyFixture.homesToClean.append(home)
        try fx.gpg(home, ["--quick-gen-key", "Stale <stale@example.org>", "ed25519", "cert", "never"])
        let fpr = try fx.fingerprint(home, "stale@example.org")
        try fx.gpg(home, ["--quick-add-key", fpr, "cv25519", "encr", "never"])
        let stale = try fx.gpg(home, ["--export", fpr])
        try fx.gpg(home, ["--quick-add-key", fpr, "cv25519", "encr", "never"])
        try fx.gpg(home, ["--command-fd", "0", "--edit-key", fpr], stdin: Array("key 1\nrevkey\ny\n0\n\ny\nsave\n".utf8))
        let ring = try PGPKeyring(homeDirectory: home)
        let key = try #require(try ring.context().listKeys(fpr).first)
        #expect(key.encryptionKeys.count == 1)
        #expect {
            try ring.checkWithLibrnp(key, exported: stale, for: "stale@example.org")
        } throws: { e in
            (e as? RecipientKeyError)?.problem.contains("which GnuPG does not count usable") == true
        }
        // with what GnuPG exports now, librnp agrees
        let fresh = try PGPKeyring(homeDirectory: home)
        #expect(try fresh.key(for: "stale@example.org").fingerprint == fpr)
    }
}
