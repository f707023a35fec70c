import Foundation
import Testing
import SLMessage
import SLOpenSSL
@testable import SLSMIME

/// Certificates made at test time by Fixtures/make-certs.py (Python cryptography).
final class CertFixture: @unchecked Sendable {
    let dir: String
    static let shared: Result<CertFixture, any Error> = Result { try CertFixture() }

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sl-smime-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/make-certs.py").path
        try run(["python3", script, dir])
    }

    func cert(_ name: String) throws -> X509Certificate {
        try X509Certificate(derOrPEM: Array(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(name).pem"))))
    }

    @discardableResult
    func run(_ argv: [String], stdin: Bytes = []) throws -> Bytes {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        let inFile = dir + "/stdin-\(UUID().uuidString)", outFile = dir + "/stdout-\(UUID().uuidString)"
        try Data(stdin).write(to: URL(fileURLWithPath: inFile))
        _ = FileManager.default.createFile(atPath: outFile, contents: nil)
        p.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: inFile))
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outFile))
        let err = Pipe()
        p.standardError = err
        try p.run()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw OpenSSLError(plain: "\(argv.joined(separator: " ")): \(errText)") }
        return Array(try Data(contentsOf: URL(fileURLWithPath: outFile)))
    }
}

@Suite(.serialized) struct CertificateCheckTests {
    let fx: CertFixture
    let checker: CertificateChecker
    init() throws {
        fx = try CertFixture.shared.get()
        checker = try CertificateChecker(systemCAs: false, anchors: [try fx.cert("ca")])
    }

    @Test(arguments: ["rsa", "ec"])
    func goodCertificatesPass(_ name: String) throws {
        #expect(checker.rejection(of: try fx.cert(name), for: "\(name)@example.org") == nil)
        #expect(checker.rejection(of: try fx.cert(name), for: "\(name.uppercased())@EXAMPLE.ORG") == nil)
    }

    @Test(arguments: [
        ("expired", CertificateRejection.expired),
        ("future", .notYetValid),
        ("wrongaddr", .wrongAddress),
        ("noeku", .noEmailProtection),
        ("rsasignonly", .wrongKeyUsage("RSA needs keyEncipherment")),
        ("ecencipher", .wrongKeyUsage("EC needs keyAgreement")),
    ])
    func eachRuleRejectsWithItsReason(_ name: String, _ expected: CertificateRejection) throws {
        #expect(checker.rejection(of: try fx.cert(name), for: "\(name)@example.org") == expected)
    }

    @Test func anUntrustedChainIsRejected() throws {
        guard case .untrusted = checker.rejection(of: try fx.cert("untrusted"), for: "untrusted@example.org") else {
            Issue.record("a certificate from an unknown CA passed")
            return
        }
        // and the system store alone does not trust our private CA either
        let system = try CertificateChecker(systemCAs: true)
        guard case .untrusted = system.rejection(of: try fx.cert("rsa"), for: "rsa@example.org") else {
            Issue.record("the system store trusted a private CA")
            return
        }
    }

    @Test func garbageIsNotACertificate() {
        #expect(throws: OpenSSLError.self) { try X509Certificate(derOrPEM: Array("not a cert".utf8)) }
        #expect(throws: OpenSSLError.self) { try X509Certificate(derOrPEM: [0x30, 0x82, 0xFF, 0xFF, 0x00]) }
    }
}

@Suite(.serialized) struct CMSEncryptionTests {
    let fx: CertFixture
    init() throws { fx = try CertFixture.shared.get() }

    @Test(arguments: [ContentCipher.aes256GCM, .aes256CBC])
    func opensslDecryptsForEveryRecipient(_ cipher: ContentCipher) throws {
        let entity = Array("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße, results attached.\r\n".utf8)
        let input = try TemporaryFile.openUnlinked()
        let output = try TemporaryFile.openUnlinked()
        defer { close(input); close(output) }
        try FileDescriptorIO.writeAll(input, entity)
        lseek(input, 0, SEEK_SET)
        try CMSEncryptor.encrypt(input: input, output: output, to: [try fx.cert("rsa"), try fx.cert("ec")], cipher: cipher)
        lseek(output, 0, SEEK_SET)
        var b64 = Bytes()
        var buf = Bytes(repeating: 0, count: 65536)
        while case let n = try FileDescriptorIO.read(output, into: &buf, count: buf.count), n > 0 { b64 += buf[0..<n] }
        let der = try #require(TransferDecoding.base64(b64))
        let derPath = fx.dir + "/msg-\(UUID().uuidString).der"
        try Data(der).write(to: URL(fileURLWithPath: derPath))
        for who in ["rsa", "ec"] {
            let plain = try fx.run(["openssl", "cms", "-decrypt", "-binary", "-inform", "DER", "-in", derPath,
                                    "-recip", "\(fx.dir)/\(who).pem", "-inkey", "\(fx.dir)/\(who).key"])
            #expect(plain == entity, "\(who) could not read the \(cipher) message")
        }
        // the structure is what it says: AuthEnvelopedData for GCM, EnvelopedData for CBC
        let printed = String(decoding: try fx.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", derPath]), as: UTF8.self)
        #expect(printed.contains(cipher == .aes256GCM ? "authEnvelopedData" : "envelopedData"))
    }
}
