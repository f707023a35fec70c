import Foundation
import Testing
import SLMessage
@testable import SLPGP

/// Plain encryption runs in process with librnp, to keys GnuPG selected; what it
/// writes must open with gpg 2.2 and with rnp, for every recipient.
@Suite(.serialized) struct RNPEncryptionTests {
    let fx: KeyFixture

    init() throws { fx = try KeyFixture.shared.get() }

    let plain = Array("Content-Type: text/plain; charset=utf-8\r\n\r\nGrüße, 8-bit body\r\nFrom the lab\r\n".utf8)

    func encrypt(_ plain: Bytes, to addresses: [String], ring: PGPKeyring? = nil, hideRecipients: Bool = false) throws -> Bytes {
        let ring = try ring ?? PGPKeyring(homeDirectory: fx.home)
        let input = try TemporaryFile.openUnlinked()
        let output = try TemporaryFile.openUnlinked()
        defer { close(input); close(output) }
        try FileDescriptorIO.writeAll(input, plain)
        lseek(input, 0, SEEK_SET)
        let keys = try addresses.map { try ring.key(for: $0) }
        try ring.encrypt(input: input, output: output, to: keys, hideRecipients: hideRecipients)
        lseek(output, 0, SEEK_SET)
        var cipher = Bytes()
        var buf = Bytes(repeating: 0, count: 65536)
        while case let n = try FileDescriptorIO.read(output, into: &buf, count: buf.count), n > 0 { cipher += buf[0..<n] }
        return cipher
    }

    /// A fresh GnuPG home holding only the secret key of `address`.
    func homeWithOnlySecretKey(of address: String) throws -> String {
        // short: gpg-agent's socket path must fit in sockaddr_un
        let home = URL(fileURLWithPath: fx.home).deletingLastPathComponent().path + "/o-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let secret = try fx.gpg(fx.home, ["--export-secret-keys", fx.fingerprints[address]!])
        try fx.gpg(home, ["--import"], stdin: secret)
        KeyFixture.homesToClean.append(home)
        return home
    }

    func scratchFile(_ name: String, _ bytes: Bytes) throws -> String {
        let path = fx.home + "/../\(UUID().uuidString)-\(name)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func aMessageToACurve25519AndAnRSAKeyOpensForEachWithGPG() throws {
        let cipher = try encrypt(plain, to: ["alice@example.org", "rsa@example.org"])
        #expect(String(decoding: cipher.prefix(27), as: UTF8.self) == "-----BEGIN PGP MESSAGE-----")
        // LF line endings, as gpg writes them: the MIME builder converts from there
        #expect(!cipher.contains(0x0D))
        for who in ["alice@example.org", "rsa@example.org"] {
            let home = try homeWithOnlySecretKey(of: who)
            let status = home + "/status"
            #expect(try fx.gpg(home, ["--status-file", status, "--decrypt"], stdin: cipher) == plain, "for \(who)")
            let statusText = try String(contentsOfFile: status, encoding: .utf8)
            #expect(statusText.components(separatedBy: "ENC_TO ").count - 1 == 2)
            #expect(statusText.contains("DECRYPTION_OKAY"))
            #expect(statusText.contains("GOODMDC"))
        }
    }

    @Test func theEncryptedPacketIsSEIPDVersion1WithMDCAroundZLIB() throws {
        let cipher = try encrypt(plain, to: ["alice@example.org", "rsa@example.org"])
        let listing = String(decoding: try fx.gpg(fx.home, ["--list-packets"], stdin: cipher), as: UTF8.self)
        #expect(listing.components(separatedBy: ":pubkey enc packet:").count - 1 == 2)
        #expect(listing.contains(":encrypted data packet:"))
        #expect(listing.contains("mdc_method: 2"))
        #expect(!listing.lowercased().contains("aead"))
        #expect(listing.contains(":compressed packet: algo=2"))   // ZLIB, as gpg 2.2 by default
        #expect(listing.contains(":literal data packet:"))
    }

    @Test func theRNPCommandDecryptsToo() throws {
        let cipher = try encrypt(plain, to: ["alice@example.org"])
        let secret = try fx.gpg(fx.home, ["--armor", "--export-secret-keys", fx.fingerprints["alice@example.org"]!])
        let keyFile = try scratchFile("alice-secret.asc", secret)
        let messageFile = try scratchFile("message.asc", cipher)
        let out = try KeyFixture.run(["rnp", "--keyfile", keyFile, "--decrypt", messageFile, "--output", "-"])
        #expect(out == plain)
    }

    @Test func aKeyIsExportedFromGnuPGOncePerRunHoweverManyMessages() throws {
        let ring = try PGPKeyring(homeDirectory: fx.home)
        for i in 0..<20 {
            _ = try encrypt(plain + Array("\(i)\r\n".utf8), to: ["alice@example.org"], ring: ring)
        }
        #expect(ring.exportsToRNP == 1)
        _ = try encrypt(plain, to: ["alice@example.org", "rsa@example.org"], ring: ring)
        #expect(ring.exportsToRNP == 2)
    }

    @Test func hiddenRecipientsStayWithGnuPG() throws {
        // librnp 0.16 cannot write wildcard key IDs: GnuPG encrypts these
        let ring = try PGPKeyring(homeDirectory: fx.home)
        let cipher = try encrypt(plain, to: ["alice@example.org"], ring: ring, hideRecipients: true)
        let listing = String(decoding: try fx.gpg(fx.home, ["--list-packets", "--try-all-secrets"], stdin: cipher), as: UTF8.self)
        #expect(listing.contains("keyid 0000000000000000"))
        #expect(try fx.gpg(fx.home, ["--try-all-secrets", "--decrypt"], stdin: cipher) == plain)
    }
}
