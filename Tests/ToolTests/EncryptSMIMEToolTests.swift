import Foundation
import Testing
import SLMessage

/// Certificates for the S/MIME tool tests, made by the same generator the SLSMIME
/// unit tests use (Python cryptography; OpenSSL 3.0 cannot backdate).
final class SMIMECerts: @unchecked Sendable {
    let dir: String
    static let shared: Result<SMIMECerts, any Error> = Result { try SMIMECerts() }
    init() throws {
        dir = try Tools.scratch().appendingPathComponent("certs").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let script = Tools.repository.appendingPathComponent("Tests/SLSMIMETests/Fixtures/make-certs.py").path
        let r = try Tools.runCommand(["python3", script, dir], stdin: [])
        guard r.status == 0 else { throw UsageFailure("make-certs.py: \(r.stderr)") }
    }
    func path(_ name: String, _ ext: String = "pem") -> String { "\(dir)/\(name).\(ext)" }
    func der(_ name: String) throws -> Bytes {
        let r = try Tools.runCommand(["openssl", "x509", "-in", path(name), "-outform", "DER"], stdin: [])
        return r.stdout
    }
}

/// Decrypts an S/MIME message with `openssl cms` as `who`.
func opensslDecrypt(_ message: Bytes, _ certs: SMIMECerts, as who: String) throws -> ToolRun {
    try Tools.runCommand(["openssl", "cms", "-decrypt", "-recip", certs.path(who), "-inkey", certs.path(who, "key")], stdin: message)
}

/// The CMS content type OpenSSL finds in an S/MIME message: what was written,
/// whatever the smime-type parameter says.
enum CMSType: String {
    case enveloped = "1.2.840.113549.1.7.3"           // EnvelopedData, AES-256-CBC here
    case authEnveloped = "1.2.840.113549.1.9.16.1.23"  // AuthEnvelopedData, AES-256-GCM here

    init?(of message: Bytes) throws {
        let printed = try Tools.runCommand(["openssl", "cms", "-cmsout", "-print"], stdin: message)
        let line = String(decoding: printed.stdout, as: UTF8.self).split(separator: "\n").first { $0.contains("contentType:") }
        guard let line, let open = line.lastIndex(of: "("), let close = line.lastIndex(of: ")"), open < close else { return nil }
        self.init(rawValue: String(line[line.index(after: open)..<close]))
    }

    var smimeType: String { self == .enveloped ? "smime-type=enveloped-data" : "smime-type=authEnveloped-data" }
}

/// A one-contact vCard for `who`'s test certificate, with `extra` property lines.
func smimeCard(_ certs: SMIMECerts, _ who: String, _ extra: String = "") throws -> String {
    let b64 = Data(try certs.der(who)).base64EncodedString()
    return "BEGIN:VCARD\r\nVERSION:4.0\r\nEMAIL:\(who)@example.org\r\nKEY:data:application/pkix-cert;base64,\(b64)\r\n"
        + (extra.isEmpty ? "" : extra + "\r\n") + "END:VCARD\r\n"
}

@Suite(.serialized) struct EncryptSMIMEToolTests {
    let certs: SMIMECerts
    init() throws { certs = try SMIMECerts.shared.get() }

    func encrypt(_ args: [String], _ input: Bytes) throws -> ToolRun {
        try Tools.run("sl-encrypt-smime", ["--no-system-cas", "--anchor", certs.path("ca")] + args, stdin: input)
    }

    @Test(arguments: ["rsa", "ec"])
    func aloneOpenSSLDecryptsTheOriginalEntity(_ who: String) throws {
        let run = try encrypt(["-r", "\(who)@example.org", "--certificate", certs.path(who)], attachmentMessage)
        #expect(run.status == 0, "\(run.stderr)")
        let out = try Message(bytes: run.stdout)
        #expect(out.header["Content-Type"]?.contains("smime-type=enveloped-data") == true)   // CBC, the default
        #expect(try CMSType(of: run.stdout) == .enveloped)
        #expect(out.header["Subject"] == "[...]")
        let plain = try opensslDecrypt(run.stdout, certs, as: who)
        #expect(plain.status == 0, "\(plain.stderr)")
        let inner = try MIMEEntity.parse(plain.stdout)
        #expect(inner.contentType.parameter("hp") == "cipher")
        #expect(inner.header["Subject"].map(EncodedWords.decode) == "Ergebnisse für Sie")
        let original = try MIMEEntity.parse(attachmentMessage).canonicalCRLF()
        try #require(inner.parts.count == 2)
        #expect(try inner.parts[0].decodedBody() == original.parts[0].decodedBody())
        #expect(try inner.parts[1].decodedBody() == original.parts[1].decodedBody())
    }

    @Test(arguments: [
        ("expired", "expired"), ("future", "not yet valid"), ("wrongaddr", "not issued for this address"),
        ("untrusted", "not trusted"), ("noeku", "emailProtection"), ("rsasignonly", "keyEncipherment"),
    ])
    func rejectedCertificatesSayWhichCheckFailed(_ name: String, _ words: String) throws {
        let run = try encrypt(["-r", "\(name)@example.org", "--certificate", certs.path(name)], attachmentMessage)
        #expect(run.status == 69, "\(run.stderr)")
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.split(separator: "\n").count == 1)
        #expect(run.stderr.contains("\(name)@example.org") && run.stderr.contains(words))
    }

    /// Alone, --cipher wins over smime_cipher, which wins over the default, CBC.
    @Test(arguments: [
        (nil, nil, CMSType.enveloped), ("aes256-gcm", nil, .authEnveloped), (nil, "aes256-gcm", .authEnveloped),
        ("aes256-gcm", "aes256-cbc", .enveloped), ("aes256-cbc", "AES256-GCM", .authEnveloped),
    ] as [(String?, String?, CMSType)])
    func aloneTheCipherIsTheOptionElseTheConfigurationElseCBC(_ configured: String?, _ option: String?, _ expected: CMSType) throws {
        var args = ["-r", "ec@example.org", "--certificate", certs.path("ec")]
        if let configured {
            let conf = try Tools.scratch().appendingPathComponent("sl.conf").path
            try "smime_cipher = \(configured)\n".write(toFile: conf, atomically: true, encoding: .utf8)
            args += ["--config", conf]
        }
        if let option { args += ["--cipher", option] }
        let run = try encrypt(args, attachmentMessage)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try CMSType(of: run.stdout) == expected)
        #expect(try Message(bytes: run.stdout).header["Content-Type"]?.contains(expected.smimeType) == true)
        let plain = try opensslDecrypt(run.stdout, certs, as: "ec")
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(try MIMEEntity.parse(plain.stdout).contentType.parameter("hp") == "cipher")
    }

    /// In the pipeline the contact's X-SL-SMIME-GCM wins over smime_cipher both ways.
    @Test(arguments: [
        ("", "", CMSType.enveloped),
        ("smime_cipher = aes256-gcm\n", "", .authEnveloped),
        ("smime_cipher = aes256-gcm\n", "X-SL-SMIME-GCM:no", .enveloped),
        ("", "X-SL-SMIME-GCM:yes", .authEnveloped),
        ("smime_cipher = aes256-cbc\n", "X-SL-SMIME-GCM:yes", .authEnveloped),
    ] as [(String, String, CMSType)])
    func inThePipelineTheBookCertificateIsUsedWithTheContactsCipherElseTheConfigured(
        _ configured: String, _ property: String, _ expected: CMSType) throws {
        let dir = try Tools.scratch()
        try smimeCard(certs, "ec", property).write(toFile: dir.appendingPathComponent("book.vcf").path, atomically: true, encoding: .utf8)
        let conf = dir.appendingPathComponent("sl.conf").path
        try ("book b = book.vcf\ndefault_book = b\nask_sender = no\nfallback = insecure\nsmime_system_cas = no\nsmime_anchors = \(certs.path("ca"))\n" + configured)
            .write(toFile: conf, atomically: true, encoding: .utf8)
        let msg = bytes("From: alice@clinic.example\nTo: ec@example.org, zed@example.org\nSubject: lab\n\nFrom the lab\n")
        let classified = try Tools.run("sl-classify", ["--config", conf, "-t"], stdin: msg)
        #expect(classified.status == 0, "\(classified.stderr)")
        let run = try Tools.run("sl-encrypt-smime", ["--config", conf], stdin: classified.stdout)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(!run.stderr.contains("AES-GCM"))        // one recipient: nothing to reconcile
        let out = try Tools.messages(run.stdout)
        let smime = try #require(out.first { (try? Envelope.read(from: $0.header))??.method == .smime })
        #expect(smime.header["Content-Type"]?.contains(expected.smimeType) == true)
        #expect(try CMSType(of: try smime.bytes()) == expected)
        let plain = try opensslDecrypt(try smime.bytes(), certs, as: "ec")
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(String(decoding: plain.stdout, as: UTF8.self).hasSuffix("\r\n\r\nFrom the lab\r\n"))
        let other = try #require(out.first { (try? Envelope.read(from: $0.header))??.method == .insecure })
        let routed = try Tools.messages(classified.stdout)
        #expect(try other.bytes() == routed.first { (try? Envelope.read(from: $0.header))??.method == .insecure }?.bytes())
    }

    /// One copy to two contacts that differ goes out in the cipher both read, CBC,
    /// with a warning; when both read GCM it stays GCM.
    @Test(arguments: [
        ("smime_cipher = aes256-gcm\n", "X-SL-SMIME-GCM:no", "", CMSType.enveloped),
        ("", "X-SL-SMIME-GCM:yes", "", .enveloped),
        ("", "X-SL-SMIME-GCM:yes", "X-SL-SMIME-GCM:yes", .authEnveloped),
    ] as [(String, String, String, CMSType)])
    func aCopyForSeveralContactsUsesTheCipherAllRead(_ configured: String, _ rsaSays: String, _ ecSays: String, _ expected: CMSType) throws {
        let dir = try Tools.scratch()
        try (try smimeCard(certs, "rsa", rsaSays) + smimeCard(certs, "ec", ecSays))
            .write(toFile: dir.appendingPathComponent("book.vcf").path, atomically: true, encoding: .utf8)
        let conf = dir.appendingPathComponent("sl.conf").path
        try ("book b = book.vcf\ndefault_book = b\nask_sender = no\nsmime_system_cas = no\nsmime_anchors = \(certs.path("ca"))\n" + configured)
            .write(toFile: conf, atomically: true, encoding: .utf8)
        // Both named in To: they may share a copy (a recipient the header does not
        // name would get one of its own).
        let toBoth = bytes(String(decoding: attachmentMessage, as: UTF8.self)
            .replacingOccurrences(of: "To: bob@example.org, carol@example.net", with: "To: rsa@example.org, ec@example.org"))
        let classified = try Tools.run("sl-classify", ["--config", conf, "-f", "alice@clinic.example", "rsa@example.org", "ec@example.org"],
                                       stdin: toBoth)
        #expect(classified.status == 0, "\(classified.stderr)")
        let run = try Tools.run("sl-encrypt-smime", ["--config", conf], stdin: classified.stdout)
        #expect(run.status == 0, "\(run.stderr)")
        let copies = try Tools.messages(run.stdout)
        let copy = try #require(copies.count == 1 ? copies.first : nil, "expected one copy for both recipients, got \(copies.count)")
        #expect(try CMSType(of: try copy.bytes()) == expected)
        #expect(run.stderr.contains("a recipient cannot read AES-GCM") == (expected == .enveloped))
        for who in ["rsa", "ec"] {
            let plain = try opensslDecrypt(try copy.bytes(), certs, as: who)
            #expect(plain.status == 0, "\(who): \(plain.stderr)")
        }
    }

    @Test func aBadSMIMECipherIsAConfigurationErrorNamingFileAndLine() throws {
        let conf = try Tools.scratch().appendingPathComponent("sl.conf").path
        try "ask_sender = no\nsmime_cipher = aes128-gcm\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let run = try encrypt(["--config", conf, "-r", "ec@example.org", "--certificate", certs.path("ec")], attachmentMessage)
        #expect(run.status == 78, "\(run.stderr)")
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.split(separator: "\n").count == 1)
        #expect(run.stderr.contains("\(conf):2: smime_cipher must be aes256-cbc or aes256-gcm"), "\(run.stderr)")
    }

    @Test func signedThenEnvelopedVerifiesWithOpenSSLAndEncryptToSelfWorks() throws {
        let run = try encrypt(["-r", "rsa@example.org", "--certificate", certs.path("rsa"), "--sign", "--encrypt-to-self",
                               "--signer-certificate", certs.path("ec"), "--signer-key", certs.path("ec", "key")], attachmentMessage)
        #expect(run.status == 0, "\(run.stderr)")
        for who in ["rsa", "ec"] {                        // the recipient, and the sender's own copy
            let signed = try opensslDecrypt(run.stdout, certs, as: who)
            #expect(signed.status == 0, "\(who): \(signed.stderr)")
            #expect(String(decoding: signed.stdout.prefix(200), as: UTF8.self).contains("smime-type=signed-data"))
            let verified = try Tools.runCommand(["openssl", "cms", "-verify", "-CAfile", certs.path("ca"), "-purpose", "any"], stdin: signed.stdout)
            #expect(verified.status == 0, "\(verified.stderr)")
            #expect(verified.stderr.contains("Verification successful"))
            #expect(try MIMEEntity.parse(verified.stdout).contentType.parameter("hp") == "cipher")
        }
        let wrongKey = try encrypt(["-r", "rsa@example.org", "--certificate", certs.path("rsa"), "--sign",
                                    "--signer-certificate", certs.path("ec"), "--signer-key", certs.path("rsa", "key")], attachmentMessage)
        #expect(wrongKey.status == 64 && wrongKey.stdout.isEmpty && wrongKey.stderr.contains("is not the key"))
    }

    /// gpgsm reads what we write by default: AES-256-CBC EnvelopedData. (It cannot
    /// read our AES-GCM: libksba takes GCM parameters only with the default 12-octet
    /// tag, and OpenSSL writes 16, so gpgsm says "error getting IV".)
    @Test func gpgsmDecryptsTheDefaultCBCForm() throws {
        let dir = try Tools.scratch()
        let home = dir.appendingPathComponent("gpgsm").path
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { _ = try? Tools.runCommand(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], stdin: []) }
        try "allow-loopback-pinentry\n".write(toFile: home + "/gpg-agent.conf", atomically: true, encoding: .utf8)
        let p12 = dir.appendingPathComponent("rsa.p12").path
        // gpgsm 2.2 reads only the legacy PKCS#12 algorithms
        let export = try Tools.runCommand(["openssl", "pkcs12", "-export", "-legacy", "-certpbe", "NONE", "-keypbe", "PBE-SHA1-3DES",
                                           "-macalg", "sha1", "-in", certs.path("rsa"), "-inkey", certs.path("rsa", "key"),
                                           "-passout", "pass:", "-out", p12], stdin: [])
        #expect(export.status == 0, "\(export.stderr)")
        let gpgsm = ["gpgsm", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
        let imported = try Tools.runCommand(gpgsm + ["--import", p12], stdin: [])
        #expect(imported.stderr.contains("secret keys imported: 1"), "\(imported.stderr)")

        try smimeCard(certs, "rsa").write(toFile: dir.appendingPathComponent("book.vcf").path, atomically: true, encoding: .utf8)
        let conf = dir.appendingPathComponent("sl.conf").path
        try "book b = book.vcf\ndefault_book = b\nask_sender = no\nsmime_system_cas = no\nsmime_anchors = \(certs.path("ca"))\n"
            .write(toFile: conf, atomically: true, encoding: .utf8)
        let classified = try Tools.run("sl-classify", ["--config", conf, "-f", "alice@clinic.example", "rsa@example.org"], stdin: attachmentMessage)
        let run = try Tools.run("sl-encrypt-smime", ["--config", conf], stdin: classified.stdout)
        #expect(run.status == 0, "\(run.stderr)")
        let out = try #require(try Tools.messages(run.stdout).first)
        #expect(out.header["Content-Type"]?.contains("smime-type=enveloped-data") == true)
        #expect(try CMSType(of: try out.bytes()) == .enveloped)
        #expect(try opensslDecrypt(try out.bytes(), certs, as: "rsa").status == 0)
        let der = try #require(TransferDecoding.base64(try out.body.readAll()))
        let derFile = dir.appendingPathComponent("message.p7m").path
        try Data(der).write(to: URL(fileURLWithPath: derFile))
        let decrypted = try Tools.runCommand(gpgsm + ["--disable-crl-checks", "--decrypt", derFile], stdin: [])
        try #require(decrypted.status == 0, "\(decrypted.stderr)")
        let inner = try MIMEEntity.parse(decrypted.stdout)
        let original = try MIMEEntity.parse(attachmentMessage).canonicalCRLF()
        try #require(inner.parts.count == 2)
        #expect(try inner.parts[1].decodedBody() == original.parts[1].decodedBody())
    }

    @Test func largeMessagesStreamInBoundedMemory() throws {
        var input = bytes("From: a@clinic.example\nTo: ec@example.org\nSubject: big\n\n")
        let line = bytes(String(repeating: "0123456789abcdef", count: 4) + "\n")
        while input.count < 40 << 20 { input += line }
        let rss = try Tools.scratch().appendingPathComponent("rss").path
        let run = try Tools.run("sl-encrypt-smime", ["--no-system-cas", "--anchor", certs.path("ca"), "-r", "ec@example.org",
                                                     "--certificate", certs.path("ec")], stdin: input,
                                wrapper: ["/usr/bin/time", "-f", "%M", "-o", rss])
        #expect(run.status == 0, "\(run.stderr)")
        let kib = Int(try String(contentsOfFile: rss, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) ?? .max
        #expect(Tools.underSanitizer || kib < 48 * 1024, "peak RSS \(kib) KiB for a 40 MiB message")
        let plain = try opensslDecrypt(run.stdout, certs, as: "ec")
        #expect(plain.status == 0 && plain.stdout.count > 40 << 20)
    }

    @Test func usageMistakes() throws {
        let run = try Tools.run("sl-encrypt-smime", ["-r", "ec@example.org"], stdin: attachmentMessage)
        #expect(run.status == 64 && run.stderr.contains("--certificate"))
        let bad = try Tools.run("sl-encrypt-smime", ["-r", "ec@example.org", "--certificate", "/nonexistent.pem"], stdin: attachmentMessage)
        #expect(bad.status == 64 && bad.stdout.isEmpty)
        let cipher = try encrypt(["-r", "ec@example.org", "--certificate", certs.path("ec"), "--cipher", "aes128-cbc"], attachmentMessage)
        #expect(cipher.status == 64 && cipher.stdout.isEmpty && cipher.stderr.contains("--cipher") && cipher.stderr.contains("aes256-gcm"), "\(cipher.stderr)")
        #expect(cipher.stderr.split(separator: "\n").count == 1)
    }
}
