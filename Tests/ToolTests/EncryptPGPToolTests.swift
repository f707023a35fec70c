import Foundation
import Testing
import SLMessage

/// A GnuPG home for the tool tests, with secret keys so the tests can decrypt with
/// the real gpg what sl-encrypt-pgp wrote.
final class GPGHome: @unchecked Sendable {
    let path: String
    var fingerprints: [String: String] = [:]

    static let shared: Result<GPGHome, any Error> = Result { try GPGHome() }

    init() throws {
        path = try Tools.scratch().appendingPathComponent("gnupg").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for (who, algo, sub) in [("bob@example.org", "ed25519", "cv25519"), ("carol@example.net", "rsa3072", "rsa3072"),
                                 ("alice@clinic.example", "ed25519", "cv25519")] {
            try gpg(["--quick-gen-key", "\(who.split(separator: "@")[0].capitalized) <\(who)>", algo, "cert,sign", "never"])
            let f = try fingerprint(who)
            try gpg(["--quick-add-key", f, sub, "encr", "never"])
            fingerprints[who] = f
        }
        let home = path
        GPGHome.toKill = home
        atexit { _ = try? GPGHome.run(["gpgconf", "--homedir", GPGHome.toKill, "--kill", "gpg-agent"]) }
    }

    nonisolated(unsafe) static var toKill = ""

    func fingerprint(_ who: String) throws -> String {
        let out = String(decoding: try gpg(["--with-colons", "--list-keys", "<\(who)>"]), as: UTF8.self)
        for line in out.split(separator: "\n") where line.hasPrefix("fpr:") {
            return String(line.split(separator: ":", omittingEmptySubsequences: false)[9])
        }
        throw UsageFailure("no key for \(who)")
    }

    @discardableResult
    func gpg(_ args: [String], stdin: Bytes? = nil, status: String? = nil) throws -> Bytes {
        var a = ["gpg", "--homedir", path, "--batch", "--yes", "--quiet", "--passphrase", "", "--pinentry-mode", "loopback"]
        if let status { a += ["--status-file", status] }
        return try Self.run(a + args, stdin: stdin)
    }

    static func run(_ argv: [String], stdin: Bytes? = nil) throws -> Bytes {
        let r = try Tools.runCommand(argv, stdin: stdin ?? [])
        guard r.status == 0 else { throw UsageFailure("\(argv.joined(separator: " ")): \(r.stderr)") }
        return r.stdout
    }

    /// The binary public key of `who`, for an address book.
    func export(_ who: String) throws -> Bytes { try gpg(["--export", "<\(who)>"]) }
}

struct UsageFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// The decrypted payload of a PGP/MIME message, and gpg's status lines.
func decryptPGPMIME(_ message: Message, with home: GPGHome) throws -> (payload: Bytes, status: String) {
    let entity = try MIMEEntity.parse(try message.bytes())
    #expect(entity.contentType.mimeType == "multipart/encrypted")
    #expect(entity.contentType.parameter("protocol") == "application/pgp-encrypted")
    #expect(entity.parts.count == 2)
    #expect(entity.parts.first?.contentType.mimeType == "application/pgp-encrypted")
    let armored = try #require(entity.parts.last).body
    let status = try Tools.scratch().appendingPathComponent("status").path
    let payload = try home.gpg(["--decrypt"], stdin: armored, status: status)
    return (payload, try String(contentsOfFile: status, encoding: .utf8))
}

let attachmentMessage: Bytes = {
    var pdf = Bytes()
    for i in 0..<3000 { pdf.append(UInt8(truncatingIfNeeded: i &* 7)) }
    let b64 = Data(pdf).base64EncodedString(options: [.lineLength76Characters, .endLineWithLineFeed])
    return bytes("""
    From: Dr. Alice <alice@clinic.example>
    To: bob@example.org, carol@example.net
    Subject: Ergebnisse für Sie
    Date: Sun, 29 Nov 2026 09:00:00 +0100
    Message-ID: <att-1@clinic.example>
    MIME-Version: 1.0
    Content-Type: multipart/mixed; boundary="outer"

    --outer
    Content-Type: text/plain; charset=utf-8
    Content-Transfer-Encoding: 8bit

    Grüße aus der Praxis.
    From the lab: all normal.

    --outer
    Content-Type: application/pdf; name="results.pdf"
    Content-Disposition: attachment; filename="results.pdf"
    Content-Transfer-Encoding: base64

    \(b64)
    --outer--

    """)
}()

@Suite(.serialized) struct EncryptPGPToolTests {
    let home: GPGHome
    init() throws { home = try GPGHome.shared.get() }

    func encrypt(_ args: [String], _ input: Bytes, env: [String: String] = [:]) throws -> ToolRun {
        try Tools.run("sl-encrypt-pgp", ["--homedir", home.path] + args, stdin: input, env: env)
    }

    @Test func aloneItEncryptsToEachRecipientAndGPGDecryptsTheOriginalEntity() throws {
        let run = try encrypt(["-r", "bob@example.org", "-r", "carol@example.net"], attachmentMessage)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(!run.stdoutText.hasPrefix("From "))          // one bare message in, one bare out
        let out = try Message(bytes: run.stdout)
        #expect(out.header["Subject"] == "[...]")
        #expect(out.header["To"] == "bob@example.org, carol@example.net")
        let (payload, status) = try decryptPGPMIME(out, with: home)
        #expect(status.components(separatedBy: "ENC_TO ").count - 1 == 2)
        // The payload is the original entity: its content fields (with hp="cipher"),
        // the protected fields, and the original body, in canonical CRLF.
        let inner = try MIMEEntity.parse(payload)
        #expect(inner.contentType.parameter("hp") == "cipher")
        #expect(inner.header["Subject"].map(EncodedWords.decode) == "Ergebnisse für Sie")
        #expect(inner.header.all("HP-Outer").map(\.unfoldedValue).contains("Subject: [...]"))
        let original = try MIMEEntity.parse(attachmentMessage).canonicalCRLF()
        #expect(inner.parts.count == 2)
        #expect(try inner.parts[0].decodedBody() == original.parts[0].decodedBody())
        #expect(try inner.parts[1].decodedBody() == original.parts[1].decodedBody())
        #expect(inner.parts[1].contentDisposition?.filename == "results.pdf")
    }

    @Test func aloneStrayRoutingFieldsDoNotMatter() throws {
        let msg = bytes("From: a@clinic.example\nX-SL-Method: insecure\nSubject: s\n\nbody\n")
        let run = try encrypt(["-r", "bob@example.org"], msg)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try Message(bytes: run.stdout).header["Content-Type"]?.hasPrefix("multipart/encrypted") == true)
    }

    @Test func signedAndEncryptedVerifiesWithGPG() throws {
        let run = try encrypt(["-r", "bob@example.org", "--sign", "--sign-as", "alice@clinic.example"], attachmentMessage)
        #expect(run.status == 0, "\(run.stderr)")
        let (_, status) = try decryptPGPMIME(try Message(bytes: run.stdout), with: home)
        #expect(status.contains("GOODSIG"))
        #expect(status.contains("VALIDSIG \(home.fingerprints["alice@clinic.example"]!)"))
    }

    @Test func encryptToSelfAddsTheSendersKey() throws {
        let run = try encrypt(["-r", "bob@example.org", "--encrypt-to-self"], attachmentMessage)
        #expect(run.status == 0, "\(run.stderr)")
        let (_, status) = try decryptPGPMIME(try Message(bytes: run.stdout), with: home)
        #expect(status.components(separatedBy: "ENC_TO ").count - 1 == 2)
    }

    @Test func inThePipelineItEncryptsPGPRoutedCopiesAndPassesTheRestByteForByte() throws {
        // an address book holding Bob's public key; classify routes Bob to PGP
        let dir = try Tools.scratch()
        let b64 = Data(try home.export("bob@example.org")).base64EncodedString()
        let card = "BEGIN:VCARD\r\nVERSION:4.0\r\nEMAIL:bob@example.org\r\nKEY:data:application/pgp-keys;base64,\(b64)\r\nEND:VCARD\r\n"
        try card.write(toFile: dir.appendingPathComponent("book.vcf").path, atomically: true, encoding: .utf8)
        let conf = dir.appendingPathComponent("sl.conf").path
        // the sender's policy signs and sets the outer subject
        try "book b = book.vcf\ndefault_book = b\nask_sender = no\nfallback = insecure\npgp_homedir = \(home.path)\n[user alice@clinic.example]\npgp_sign = yes\nprotected_subject = (encrypted message)\n"
            .write(toFile: conf, atomically: true, encoding: .utf8)
        let msg = bytes("From: alice@clinic.example\nTo: bob@example.org, zed@example.org\nSubject: lab\n\nFrom the lab\n")
        let classified = try Tools.run("sl-classify", ["--config", conf, "-t"], stdin: msg)
        #expect(classified.status == 0, "\(classified.stderr)")
        let routed = try Tools.messages(classified.stdout)
        #expect(routed.count == 2)
        let run = try Tools.run("sl-encrypt-pgp", ["--config", conf], stdin: classified.stdout)
        #expect(run.status == 0, "\(run.stderr)")
        let out = try Tools.messages(run.stdout)
        #expect(out.count == 2)
        let pgp = try #require(out.first { (try? Envelope.read(from: $0.header))??.method == .pgp })
        let plain = try #require(out.first { (try? Envelope.read(from: $0.header))??.method == .insecure })
        // the insecure copy is exactly what classify wrote
        let original = try #require(routed.first { (try? Envelope.read(from: $0.header))??.method == .insecure })
        #expect(try plain.bytes() == original.bytes())
        // the PGP copy keeps its routing at the top and decrypts for Bob
        #expect(pgp.header.fields.first?.name == "X-SL-Version")
        #expect(pgp.header["Subject"] == "(encrypted message)")
        let (payload, status) = try decryptPGPMIME(pgp, with: home)
        #expect(String(decoding: payload, as: UTF8.self).hasSuffix("\r\n\r\nFrom the lab\r\n"))
        #expect(status.contains("VALIDSIG \(home.fingerprints["alice@clinic.example"]!)"))
    }

    @Test func alreadyEncryptedMessagesAreNotWrappedAgain() throws {
        let first = try encrypt(["-r", "bob@example.org"], attachmentMessage)
        let second = try encrypt(["-r", "bob@example.org"], first.stdout)
        #expect(second.status == 0)
        #expect(second.stdout == first.stdout)
        #expect(second.stderr.contains("already PGP/MIME"))
        let inline = bytes("From: a@b.example\nSubject: x\n\n-----BEGIN PGP MESSAGE-----\n\nhQEMA...\n-----END PGP MESSAGE-----\n")
        let third = try encrypt(["-r", "bob@example.org"], inline)
        #expect(third.stdout == inline)
        let smime = bytes("From: a@b.example\nContent-Type: application/pkcs7-mime; smime-type=authEnveloped-data\n\nMIIB\n")
        #expect(try encrypt(["-r", "bob@example.org"], smime).stdout == smime)
        // fail closed: an armor line inside the text, or an unlabelled PKCS#7 blob, is
        // not proof of encryption, so those messages are encrypted
        let quoted = bytes("From: a@b.example\nSubject: re\n\nYou wrote:\n> -----BEGIN PGP MESSAGE-----\n-----BEGIN PGP MESSAGE-----\nnot really\n")
        #expect(try Message(bytes: try encrypt(["-r", "bob@example.org"], quoted).stdout).header["Content-Type"]?.hasPrefix("multipart/encrypted") == true)
        let unlabelled = bytes("From: a@b.example\nContent-Type: application/pkcs7-mime\n\nMIIB\n")
        #expect(try Message(bytes: try encrypt(["-r", "bob@example.org"], unlabelled).stdout).header["Content-Type"]?.hasPrefix("multipart/encrypted") == true)
    }

    @Test(arguments: [
        (["-r", "nobody@example.org"], Int32(69), "nobody@example.org"),
        (["-r", "not an address"], Int32(64), "recipient"),
        (["-r", "bob@example.org", "--sign", "--sign-as", "nobody@example.org"], Int32(69), "secret key"),
    ])
    func failuresWriteNothingAndSayWhy(_ args: [String], _ code: Int32, _ words: String) throws {
        let run = try encrypt(args, attachmentMessage)
        #expect(run.status == code, "\(run.stderr)")
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.split(separator: "\n").count == 1)
        #expect(run.stderr.contains(words))
    }

    @Test func aStreamIsEncryptedInParallelAndWrittenInOrder() throws {
        var stream = Bytes()
        for i in 1...24 {
            stream += bytes("From alice@clinic.example Mon Jan  1 00:00:00 2026\nFrom: alice@clinic.example\nTo: bob@example.org\nMessage-ID: <\(i)@clinic.example>\nSubject: \(i)\n\n>From body \(i)\n\n")
        }
        let run = try encrypt(["-r", "bob@example.org", "--jobs", "3"], stream)
        #expect(run.status == 0, "\(run.stderr)")
        let out = try Tools.messages(run.stdout)
        #expect(out.map { $0.header["Message-ID"] ?? "" } == (1...24).map { "<\($0)@clinic.example>" })
        let (payload, _) = try decryptPGPMIME(out[23], with: home)
        #expect(String(decoding: payload, as: UTF8.self).hasSuffix("\r\n\r\nFrom body 24\r\n"))
        // one bad message at the end of the stream: what came before is passed on,
        // and the run fails on it
        let bad = stream + bytes("From x@y Mon Jan  1 00:00:00 2026\nSubject: a\u{0}b\n\nx\n\n")
        let failed = try encrypt(["-r", "bob@example.org", "--jobs", "3"], bad)
        #expect(failed.status == 65 && failed.stderr.contains("message 25"))
        #expect(try Tools.messages(failed.stdout).count == 24)
        // with a reject file it is set aside in the middle of the batch and the rest goes on
        let rejects = try Tools.scratch().appendingPathComponent("rejects").path
        let kept = try encrypt(["-r", "bob@example.org", "--jobs", "3", "--reject-file", rejects], bad + stream)
        #expect(kept.status == 65 && kept.stderr.contains("1 malformed message set aside"))
        #expect(try Tools.messages(kept.stdout).count == 48)
        #expect(try String(contentsOfFile: rejects, encoding: .utf8).contains("X-SL-Rejected: sl-encrypt-pgp: NUL byte in the header section\nSubject: a\u{0}b\n"))
    }

    /// gpg processes a run starts, counted from strace's log of every execve
    /// (GPGME starts /usr/bin/gpg itself, so a PATH wrapper would see nothing).
    func gpgProcesses(_ args: [String], _ input: Bytes) throws -> Int {
        let log = try Tools.scratch().appendingPathComponent("execve").path
        let run = try Tools.run("sl-encrypt-pgp", ["--homedir", home.path] + args, stdin: input,
                                wrapper: ["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", log])
        #expect(run.status == 0, "\(run.stderr)")
        let text = try String(contentsOfFile: log, encoding: .utf8)
        return text.split(separator: "\n").filter { $0.contains("execve(\"/usr/bin/gpg\"") && !$0.contains("= -1") }.count
    }

    @Test func fiftyMessagesToOneRecipientStartGPGNoMoreOftenThanOne() throws {
        func stream(_ n: Int) -> Bytes {
            var s = Bytes()
            for i in 1...n {
                s += bytes("From alice@clinic.example Mon Jan  1 00:00:00 2026\nFrom: alice@clinic.example\nTo: bob@example.org\nSubject: \(i)\n\nbody \(i)\n\n")
            }
            return s
        }
        // key selection and the one export into librnp; the messages themselves none
        let one = try gpgProcesses(["-r", "bob@example.org"], stream(1))
        let fifty = try gpgProcesses(["-r", "bob@example.org"], stream(50))
        #expect(one >= 1 && one <= 4, "\(one) gpg processes for one message")
        #expect(fifty == one, "\(fifty) gpg processes for 50 messages, \(one) for one")
    }

    /// A pipeline whose PGP recipients all come from an address book: the keys are
    /// checked and used by librnp, and the run starts no process at all (no gpg, no
    /// gpgconf, no gpg-agent), as strace counts every execve after the tool's own.
    @Test func aBookOnlyPipelineStartsNoGnuPGProcess() throws {
        let dir = try Tools.scratch()
        // Bob's key is cv25519, Carol's RSA-3072
        let book = try ["bob@example.org", "carol@example.net"].map { who in
            "BEGIN:VCARD\r\nVERSION:4.0\r\nEMAIL:\(who)\r\nKEY:data:application/pgp-keys;base64,\(Data(try home.export(who)).base64EncodedString())\r\nEND:VCARD\r\n"
        }.joined()
        try book.write(toFile: dir.appendingPathComponent("book.vcf").path, atomically: true, encoding: .utf8)
        let conf = dir.appendingPathComponent("sl.conf").path
        // a GnuPG home that does not exist: nothing may need it
        let noHome = dir.appendingPathComponent("no-gnupg").path
        try "book b = book.vcf\ndefault_book = b\nask_sender = no\nfallback = insecure\npgp_homedir = \(noHome)\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let classified = try Tools.run("sl-classify", ["--config", conf, "-t"],
                                       stdin: bytes("From: alice@clinic.example\nTo: bob@example.org, carol@example.net\nSubject: lab\n\nFrom the lab\n"))
        #expect(classified.status == 0, "\(classified.stderr)")
        let log = dir.appendingPathComponent("execve").path
        let run = try Tools.run("sl-encrypt-pgp", ["--config", conf], stdin: classified.stdout,
                                wrapper: ["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", log])
        #expect(run.status == 0, "\(run.stderr)")
        let started = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            .filter { $0.contains("execve(") && !$0.contains("= -1") }
        #expect(started.count == 1 && started.first?.contains("sl-encrypt-pgp") == true, "\(started.joined(separator: "\n"))")
        #expect(!FileManager.default.fileExists(atPath: noHome))
        let pgp = try #require(try Tools.messages(run.stdout).first { (try? Envelope.read(from: $0.header))??.method == .pgp })
        let (payload, status) = try decryptPGPMIME(pgp, with: home)
        #expect(String(decoding: payload, as: UTF8.self).hasSuffix("\r\n\r\nFrom the lab\r\n"))
        #expect(status.components(separatedBy: "ENC_TO ").count - 1 == 2)
    }

    /// What a recipient's mail reader makes of it: mutt (batch, on a pseudo-terminal
    /// from script(1), GnuPG through GPGME) opens the message and shows the text.
    @Test func muttDisplaysTheDecryptedMessage() throws {
        let run = try encrypt(["-r", "bob@example.org", "-r", "carol@example.net"], attachmentMessage)
        #expect(run.status == 0, "\(run.stderr)")
        let dir = try Tools.scratch()
        let mailHome = dir.appendingPathComponent("home").path
        try FileManager.default.createDirectory(atPath: mailHome + "/Mail", withIntermediateDirectories: true)
        let mbox = dir.appendingPathComponent("inbox").path
        try Data(bytes("From alice@clinic.example Mon Nov 30 09:00:00 2026\n") + run.stdout + bytes("\n")).write(to: URL(fileURLWithPath: mbox))
        let shown = dir.appendingPathComponent("shown.txt").path
        let muttrc = dir.appendingPathComponent("muttrc").path
        try """
        set crypt_use_gpgme=yes
        set folder=\(mailHome)/Mail
        set spoolfile=\(mbox)
        set pager="cp %s \(shown)"
        set wait_key=no
        set prompt_after=no

        """.write(toFile: muttrc, atomically: true, encoding: .utf8)
        let mutt = try Tools.runCommand(["HOME=\(mailHome)", "GNUPGHOME=\(home.path)", "TERM=vt100", "timeout", "60",
                                         "script", "-qec", "mutt -n -F \(muttrc) -R -f \(mbox) -e 'push <display-message><exit><quit>'", "/dev/null"],
                                        stdin: [])
        #expect(mutt.status == 0, "\(mutt.stderr)")
        let text = try String(contentsOfFile: shown, encoding: .utf8)
        #expect(text.contains("[-- The following data is PGP/MIME encrypted --]"), "\(text)")
        #expect(text.contains("Grüße aus der Praxis.") && text.contains("From the lab: all normal."), "\(text)")
        #expect(text.contains("results.pdf"), "the attachment is listed: \(text)")
        #expect(!text.contains("[-- Error"), "\(text)")
    }

    @Test func theRNPCommandDecryptsWhatTheToolWrites() throws {
        let run = try encrypt(["-r", "bob@example.org", "-r", "carol@example.net"], attachmentMessage)
        #expect(run.status == 0, "\(run.stderr)")
        let entity = try MIMEEntity.parse(run.stdout)
        let dir = try Tools.scratch()
        let armored = dir.appendingPathComponent("encrypted.asc").path
        try Data(try #require(entity.parts.last).body).write(to: URL(fileURLWithPath: armored))
        for who in ["bob@example.org", "carol@example.net"] {
            let keyFile = dir.appendingPathComponent("\(who).asc").path
            try Data(try home.gpg(["--armor", "--export-secret-keys", home.fingerprints[who]!])).write(to: URL(fileURLWithPath: keyFile))
            let payload = try GPGHome.run(["rnp", "--keyfile", keyFile, "--decrypt", armored, "--output", "-"])
            #expect(String(decoding: payload, as: UTF8.self).contains("Grüße aus der Praxis."), "for \(who)")
        }
    }

    @Test func largeMessagesStreamInBoundedMemory() throws {
        var input = bytes("From: a@clinic.example\nTo: bob@example.org\nSubject: big\n\n")
        let line = bytes(String(repeating: "0123456789abcdef", count: 4) + "\n")
        while input.count < 40 << 20 { input += line }
        let rss = try Tools.scratch().appendingPathComponent("rss").path
        let run = try Tools.run("sl-encrypt-pgp", ["--homedir", home.path, "-r", "bob@example.org"], stdin: input,
                                wrapper: ["/usr/bin/time", "-f", "%M", "-o", rss])
        #expect(run.status == 0, "\(run.stderr)")
        let kib = Int(try String(contentsOfFile: rss, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) ?? .max
        #expect(Tools.underSanitizer || kib < 48 * 1024, "peak RSS \(kib) KiB for a 40 MiB message")
    }
}
