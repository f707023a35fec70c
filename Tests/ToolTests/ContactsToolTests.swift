import Foundation
import SLTestPeers
import Testing
import SLMessage
import SLPolicy

/// Material for sl-contacts, made at test time by the real tools: a GnuPG home
/// (Bob's own key, two keys for twin@, one for carol@), a CA with S/MIME
/// certificates for dave@ and erin@, and messages signed by dave with `openssl cms`.
final class ContactsFixture: @unchecked Sendable {
    let dir: String
    let gnupg: String
    var fingerprints: [String: [String]] = [:]

    static let shared: Result<ContactsFixture, any Error> = Result { try ContactsFixture() }

    init() throws {
        dir = try Tools.scratch().path
        gnupg = dir + "/gnupg"
        try FileManager.default.createDirectory(atPath: gnupg, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for (uid, who) in [("Bob <bob@example.org>", "bob@example.org"), ("Twin One <twin@example.org>", "twin@example.org"),
                           ("Twin Two <twin@example.org>", "twin@example.org"), ("Carol <carol@example.net>", "carol@example.net")] {
            try gpg(["--quick-gen-key", uid, "ed25519", "cert,sign", "never"])
            let f = try allFingerprints(who).first { !(fingerprints[who] ?? []).contains($0) } ?? ""
            try gpg(["--quick-add-key", f, "cv25519", "encr", "never"])
            fingerprints[who, default: []].append(f)
        }
        let home = gnupg
        ContactsFixture.toKill = home
        atexit { _ = try? Tools.runCommand(["gpgconf", "--homedir", ContactsFixture.toKill, "--kill", "all"], stdin: []) }

        // A CA, and S/MIME certificates it issues.
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", dir + "/ca.key", "-out", dir + "/ca.pem", "-days", "3", "-subj", "/CN=Contacts Test CA",
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        for who in ["dave", "erin"] {
            try issue(name: who, subject: "/CN=\(who.capitalized)/emailAddress=\(who)@example.org",
                      extensions: "subjectAltName=email:\(who)@example.org\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=emailProtection\n")
        }
        // Dave signs a message, detached (multipart/signed) and opaque (signed-data).
        try "Hello from Dave.\nMy certificate is attached to this signature.\n".write(toFile: dir + "/body.txt", atomically: true, encoding: .utf8)
        for (name, extra) in [("detached", [String]()), ("opaque", ["-nodetach"])] {
            try openssl(["cms", "-sign", "-in", dir + "/body.txt", "-signer", dir + "/dave.pem", "-inkey", dir + "/dave.key",
                         "-from", "dave@example.org", "-to", "admin@clinic.example", "-subject", "my certificate",
                         "-out", dir + "/\(name).eml"] + extra)
        }
    }

    nonisolated(unsafe) static var toKill = ""

    func issue(name: String, subject: String, extensions: String) throws {
        try extensions.write(toFile: dir + "/\(name).ext", atomically: true, encoding: .utf8)
        try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/\(name).key", "-out", dir + "/\(name).csr", "-subj", subject])
        try openssl(["x509", "-req", "-in", dir + "/\(name).csr", "-CA", dir + "/ca.pem", "-CAkey", dir + "/ca.key", "-CAcreateserial",
                     "-days", "2", "-extfile", dir + "/\(name).ext", "-out", dir + "/\(name).pem"])
    }

    @discardableResult
    func gpg(_ args: [String]) throws -> Bytes {
        try check(["gpg", "--homedir", gnupg, "--batch", "--yes", "--quiet", "--passphrase", "", "--pinentry-mode", "loopback"] + args)
    }

    @discardableResult
    func openssl(_ args: [String]) throws -> Bytes { try check(["openssl"] + args) }

    func check(_ argv: [String]) throws -> Bytes {
        let r = try Tools.runCommand(argv, stdin: [])
        guard r.status == 0 else { throw UsageFailure("\(argv.joined(separator: " ")): \(r.stderr)") }
        return r.stdout
    }

    func allFingerprints(_ who: String) throws -> [String] {
        let out = String(decoding: try gpg(["--with-colons", "--list-keys", "<\(who)>"]), as: UTF8.self)
        var result: [String] = []
        var primary = false
        for line in out.split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            if f.first == "pub" { primary = true } else if f.first == "fpr", primary { result.append(String(f[9])); primary = false }
        }
        return result
    }

    /// SHA-256 as `openssl x509 -fingerprint -sha256` prints it.
    func sha256(_ pem: String) throws -> String {
        let out = String(decoding: try openssl(["x509", "-in", pem, "-noout", "-fingerprint", "-sha256"]), as: UTF8.self)
        return String(out.split(separator: "=").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func write(_ bytes: Bytes, _ name: String) throws -> String {
        let path = try Tools.scratch().appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// A fresh book path in a scratch directory.
private func newBook() throws -> String { try Tools.scratch().appendingPathComponent("book.vcf").path }

private func contacts(_ args: [String], stdin: Bytes = [], env: [String: String] = [:]) throws -> ToolRun {
    try Tools.run("sl-contacts", args, stdin: stdin, env: env)
}

/// The value of a `pgp`/`smime` line as printed, without spaces.
private func printed(_ field: String, in run: ToolRun) -> [String] {
    run.stdoutText.split(separator: "\n").filter { $0.hasPrefix(field + " ") }.map { line in
        var v = line.dropFirst(field.count).trimmingCharacters(in: .whitespaces)
        if let paren = v.range(of: "  (") { v = String(v[..<paren.lowerBound]) }
        if v.hasPrefix("SHA-256 ") { v = String(v.dropFirst(8)) }
        return v.replacingOccurrences(of: " ", with: "")
    }
}

@Suite(.serialized) struct ContactsToolTests {
    let f: ContactsFixture
    init() throws { f = try ContactsFixture.shared.get() }

    // MARK: OpenPGP

    /// From the keyring: the fingerprint printed is gpg's, the book reads back to the
    /// bytes gpg exports, pinned, and sl-classify routes Bob to PGP with that pin.
    @Test func keyFromTheKeyring() throws {
        let book = try newBook()
        let run = try contacts(["add", book, "Bob@Example.org", "--name", "Bob Builder", "--pgp-from-keyring", "--gnupg-home", f.gnupg])
        #expect(run.status == 0, "\(run.stderr)")
        let fpr = try #require(f.fingerprints["bob@example.org"]?.first)
        #expect(printed("pgp", in: run) == [fpr])
        #expect(run.stderr.contains("confirm the fingerprints"))
        let loaded = try AddressBook.load(name: "t", path: book)
        let bob = try #require(loaded.contact(for: "bob@example.org"))
        #expect(bob.name == "Bob Builder" && bob.pinnedPGPFingerprint == fpr)
        #expect(bob.pgpKeys.map(\.keyData) == [try f.gpg(["--export", fpr])])
        var info = stat()
        #expect(stat(book, &info) == 0 && info.st_mode & 0o777 == 0o600)

        // The classifier finds the contact and routes to the pinned key.
        let dir = try Tools.scratch()
        let conf = dir.appendingPathComponent("sl.conf").path
        try "book mine = \(book)\ndefault_book = mine\nask_sender = no\ntls_probe = no\nfallback = bounce\nhostname = mx.test.example\n"
            .write(toFile: conf, atomically: true, encoding: .utf8)
        let classified = try Tools.run("sl-classify", ["--config", conf, "-f", "alice@clinic.example", "bob@example.org"], stdin: plainMessage)
        #expect(classified.status == 0, "\(classified.stderr)")
        #expect(classified.stdoutText.contains(fpr), "the routing does not name the pinned key")
        let json = try Tools.run("sl-classify", ["--config", conf, "--json", "-f", "alice@clinic.example", "bob@example.org"], stdin: plainMessage)
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout)) as? [[String: Any]])
        #expect(rows.first?["method"] as? String == "pgp")
    }

    @Test func theKeyringHomeFromGNUPGHOME() throws {
        let book = try newBook()
        let run = try contacts(["add", book, "carol@example.net", "--pgp-from-keyring"], env: ["GNUPGHOME": f.gnupg])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(printed("pgp", in: run) == f.fingerprints["carol@example.net"])
    }

    /// Key selection's strictness: two usable keys is no key; no key is no key.
    @Test func twoKeysOrNoneInTheKeyringAreRefused() throws {
        let book = try newBook()
        let twin = try contacts(["add", book, "twin@example.org", "--pgp-from-keyring", "--gnupg-home", f.gnupg])
        #expect(twin.status == 69 && twin.stderr.contains("2 usable PGP keys"), "\(twin.status) \(twin.stderr)")
        let none = try contacts(["add", book, "nobody@example.org", "--pgp-from-keyring", "--gnupg-home", f.gnupg])
        #expect(none.status == 69 && none.stdout.isEmpty, "\(none.stderr)")
        #expect(twin.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: book), "a refused add left a book behind")
    }

    @Test func keyFromAFileArmoredOrBinary() throws {
        let fpr = try #require(f.fingerprints["carol@example.net"]?.first)
        for armor in [true, false] {
            let file = try f.write(try f.gpg(["--export"] + (armor ? ["--armor"] : []) + [fpr]), "carol.asc")
            let book = try newBook()
            let run = try contacts(["add", book, "carol@example.net", "--pgp-key", file])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(printed("pgp", in: run) == [fpr])
            #expect(try AddressBook.load(name: "t", path: book).contact(for: "carol@example.net")?.pgpKeys.map(\.fingerprint) == [fpr])
        }
    }

    /// A key without a user ID for the address, and a file with two keys for it.
    @Test func keyFileRefusals() throws {
        let book = try newBook()
        let carols = try f.write(try f.gpg(["--export", "--armor", "<carol@example.net>"]), "carol.asc")
        let wrong = try contacts(["add", book, "bob@example.org", "--pgp-key", carols])
        #expect(wrong.status == 65 && wrong.stderr.contains("no user ID with exactly this address"), "\(wrong.stderr)")
        let twins = try f.write(try f.gpg(["--export", "<twin@example.org>"]), "twins.pgp")
        let two = try contacts(["add", book, "twin@example.org", "--pgp-key", twins])
        #expect(two.status == 65 && two.stderr.contains("2 usable keys"), "\(two.stderr)")
        let secret = try f.write(try f.gpg(["--export-secret-keys", "--armor", "<bob@example.org>"]), "bob-secret.asc")
        let refused = try contacts(["add", book, "bob@example.org", "--pgp-key", secret])
        #expect(refused.status == 65 && refused.stderr.contains("SECRET"), "\(refused.stderr)")
        let missing = try contacts(["add", book, "bob@example.org", "--pgp-key", "/nonexistent/key.asc"])
        #expect(missing.status == 66)
        #expect(!FileManager.default.fileExists(atPath: book))
    }

    // MARK: S/MIME

    @Test func certificateFromAFile() throws {
        let book = try newBook()
        let run = try contacts(["add", book, "dave@example.org", "--smime-cert", f.dir + "/dave.pem"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(printed("smime", in: run).map { $0.replacingOccurrences(of: ":", with: "") } == [try f.sha256(f.dir + "/dave.pem").replacingOccurrences(of: ":", with: "")])
        #expect(printed("smime", in: run) == [try f.sha256(f.dir + "/dave.pem")])
        // Issued by a CA the system does not trust: saved, with a warning.
        #expect(run.stderr.contains("warning: sl-encrypt-smime would refuse"))
        let der = try f.openssl(["x509", "-in", f.dir + "/dave.pem", "-outform", "DER"])
        #expect(try AddressBook.load(name: "t", path: book).contact(for: "dave@example.org")?.smimeCertificates.map(\.der) == [der])
        let other = try contacts(["add", book, "frank@example.org", "--smime-cert", f.dir + "/dave.pem"])
        #expect(other.status == 65 && other.stderr.contains("not frank@example.org"), "\(other.stderr)")
    }

    @Test(arguments: ["detached", "opaque"])
    func certificateFromASignedMessage(_ kind: String) throws {
        let book = try newBook()
        let run = try contacts(["add", book, "dave@example.org", "--smime-from-message", f.dir + "/\(kind).eml"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(printed("smime", in: run) == [try f.sha256(f.dir + "/dave.pem")])
        let der = try f.openssl(["x509", "-in", f.dir + "/dave.pem", "-outform", "DER"])
        #expect(try AddressBook.load(name: "t", path: book).contact(for: "dave@example.org")?.smimeCertificates.map(\.der) == [der])
    }

    /// A signature that does not verify over the content, and a signer who is not the contact.
    @Test func signedMessageRefusals() throws {
        let book = try newBook()
        let original = try String(contentsOfFile: f.dir + "/detached.eml", encoding: .utf8)
        #expect(original.contains("Hello from Dave."))
        let tampered = try f.write(bytes(original.replacingOccurrences(of: "Hello from Dave.", with: "Hello from Mallory")), "tampered.eml")
        let bad = try contacts(["add", book, "dave@example.org", "--smime-from-message", tampered])
        #expect(bad.status == 65 && bad.stderr.contains("does not verify"), "\(bad.stderr)")
        let other = try contacts(["add", book, "erin@example.org", "--smime-from-message", f.dir + "/detached.eml"])
        #expect(other.status == 65 && other.stderr.contains("not erin@example.org"), "\(other.stderr)")
        let unsigned = try f.write(bytes("From: dave@example.org\nSubject: hi\n\nno signature\n"), "plain.eml")
        let plain = try contacts(["add", book, "dave@example.org", "--smime-from-message", unsigned])
        #expect(plain.status == 65 && plain.stderr.contains("not S/MIME signed"), "\(plain.stderr)")
        #expect(!FileManager.default.fileExists(atPath: book))
    }

    // MARK: escrow questions

    /// The answer comes from a file, or from standard input with no terminal; it is
    /// in the book and nowhere in what the tool prints.
    @Test func escrowQuestionWithTheAnswerFromAFileOrStdin() throws {
        let book = try newBook()
        let answer = try f.write(bytes("Rex the 1st; really\nsecond line ignored\n"), "answer")
        let run = try contacts(["add", book, "gina@example.org", "--escrow-question", "Our dog's name?", "--answer-file", answer])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdoutText.contains("question  Our dog's name?  (answer set)"))
        let viaStdin = try contacts(["add", book, "hugo@example.org", "--escrow-question", "Town?"], stdin: bytes("Ulm\n"))
        #expect(viaStdin.status == 0, "\(viaStdin.stderr)")
        let loaded = try AddressBook.load(name: "t", path: book)
        #expect(loaded.contact(for: "gina@example.org")?.escrow == EscrowQuestion(question: "Our dog's name?", answer: "Rex the 1st; really"))
        #expect(loaded.contact(for: "hugo@example.org")?.escrow?.answer == "Ulm")
        let show = try contacts(["show", book, "gina@example.org"])
        #expect(show.status == 0 && show.stdoutText.contains("Our dog's name?"))
        let list = try contacts(["list", "--json", book])
        for r in [run, viaStdin, show, list] {
            #expect(!r.stdoutText.contains("Rex") && !r.stderr.contains("Rex") && !r.stdoutText.contains("Ulm"))
        }
    }

    /// There is no option that takes the answer on the command line.
    @Test func theAnswerCannotBeGivenOnTheCommandLine() throws {
        let book = try newBook()
        for option in [["--answer", "Rex"], ["--escrow-answer", "Rex"], ["--escrow-question", "Q?", "Rex"]] {
            let run = try contacts(["add", book, "gina@example.org"] + option)
            #expect(run.status == 64, "\(option): \(run.status) \(run.stderr)")
            #expect(run.stderr.split(separator: "\n").count == 1)
        }
        let empty = try contacts(["add", book, "gina@example.org", "--escrow-question", "Q?"], stdin: bytes("\n"))
        #expect(empty.status == 64)
        #expect(!FileManager.default.fileExists(atPath: book))
    }

    // MARK: the book

    @Test func listShowReplaceAndRemove() throws {
        let book = try newBook()
        #expect(try contacts(["add", book, "dave@example.org", "--name", "Dave", "--smime-cert", f.dir + "/dave.pem"]).status == 0)
        #expect(try contacts(["add", book, "bob@example.org", "--pgp-from-keyring", "--gnupg-home", f.gnupg]).status == 0)
        let again = try contacts(["add", book, "dave@example.org", "--escrow-question", "Q?"], stdin: bytes("A\n"))
        #expect(again.status == 73 && again.stderr.contains("--replace"), "\(again.stderr)")
        let replaced = try contacts(["add", book, "dave@example.org", "--replace", "--escrow-question", "Q?"], stdin: bytes("A\n"))
        #expect(replaced.status == 0, "\(replaced.stderr)")
        #expect(printed("smime", in: replaced) == [try f.sha256(f.dir + "/dave.pem")], "--replace dropped the certificate")

        let list = try contacts(["list", book])
        #expect(list.stdoutText == "dave@example.org  smime,question  Dave\nbob@example.org  pgp  bob@example.org\n", "\(list.stdoutText)")
        let json = try contacts(["list", "--json", book])
        let rows = json.stdoutText.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(rows.count == 2)
        #expect(rows.last?["pinnedPGPFingerprint"] as? String == f.fingerprints["bob@example.org"]?.first)
        #expect(rows.first?["escrowQuestion"] as? Bool == true && rows.first?["answer"] == nil)

        let show = try contacts(["show", book, "BOB@example.org"])
        #expect(show.status == 0 && printed("pgp", in: show) == f.fingerprints["bob@example.org"])
        #expect(try contacts(["remove", book, "bob@example.org"]).status == 0)
        #expect(try contacts(["show", book, "bob@example.org"]).status == 67)
        #expect(try contacts(["remove", book, "bob@example.org"]).status == 67)
        #expect(try AddressBook.load(name: "t", path: book).contacts.map(\.addresses) == [["dave@example.org"]])
    }

    @Test func usageMistakes() throws {
        let book = try newBook()
        for args in [["add", book, "x@example.org"],
                     ["add", book, "x@example.org", "--pgp-key", "a", "--pgp-from-wkd"],
                     ["add", book, "x@example.org", "--pgp-key", "a", "--ca-file", "ca.pem"],
                     ["add", book, "not an address", "--escrow-question", "Q?"],
                     ["add", book, "x@example.org", "--smime-cert", "a", "--smime-from-message", "b"]] {
            let run = try contacts(args, stdin: bytes("A\n"))
            #expect(run.status == 64, "\(args): \(run.status) \(run.stderr)")
            #expect(run.stderr.hasPrefix("sl-contacts: ") && run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
        }
        for sub in ["add", "show", "list", "remove"] {
            let help = try contacts([sub, "--help"])
            #expect(help.status == 0 && help.stdoutText.contains("USAGE: sl-contacts \(sub)"))
        }
    }

    // MARK: WKD

    /// A real nginx serving a web key directory over TLS on a loopback address, port
    /// 443, with a certificate from a CA made here; sl-contacts reaches it through
    /// --resolve and trusts it through --ca-file, as curl would.
    @Test func keyFromTheWebKeyDirectory() throws {
        let server = try WKDServer(f)
        defer { server.stop() }
        let book = try newBook()
        let tls = ["--resolve", "openpgpkey.wkd.test:443:\(server.address)", "--resolve", "wkd.test:443:\(server.address)", "--ca-file", server.ca]
        let bobFpr = try #require(f.fingerprints["bob@example.org"]?.first)

        // The advanced method.
        let run = try contacts(["add", book, "Bob@wkd.test", "--pgp-from-wkd"] + tls)
        #expect(run.status == 0, "\(run.stderr) \(server.log)")
        #expect(printed("pgp", in: run) == [bobFpr])
        #expect(run.stdoutText.contains("https://openpgpkey.wkd.test/.well-known/openpgpkey/wkd.test/hu/"))
        #expect(try AddressBook.load(name: "t", path: book).contact(for: "bob@wkd.test")?.pinnedPGPFingerprint == bobFpr)

        // The direct method, only when the openpgpkey host does not resolve.
        let direct = try contacts(["add", book, "carol@wkd.test", "--pgp-from-wkd", "--resolve", "wkd.test:443:\(server.address)", "--ca-file", server.ca])
        #expect(direct.status == 0, "\(direct.stderr)")
        #expect(direct.stdoutText.contains("https://wkd.test/.well-known/openpgpkey/hu/"))
        #expect(printed("pgp", in: direct) == f.fingerprints["carol@example.net"].map { [$0[0]] } ?? [])

        // A key whose user IDs do not have the address is refused.
        let wrong = try contacts(["add", book, "mallory@wkd.test", "--pgp-from-wkd"] + tls)
        #expect(wrong.status == 65 && wrong.stderr.contains("no user ID with exactly this address"), "\(wrong.stderr)")
        // No key: 404.
        let missing = try contacts(["add", book, "nobody@wkd.test", "--pgp-from-wkd"] + tls)
        #expect(missing.status == 69 && missing.stderr.contains("HTTP 404"), "\(missing.stderr)")
        // Without the CA the server's certificate does not verify: nothing fetched.
        let untrusted = try contacts(["add", book, "dana@wkd.test", "--pgp-from-wkd", "--resolve", "openpgpkey.wkd.test:443:\(server.address)"])
        #expect(untrusted.status == 75 && untrusted.stderr.contains("certificate"), "\(untrusted.stderr)")
        #expect(try AddressBook.load(name: "t", path: book).contacts.count == 2)
    }
}

/// nginx on a random 127.x.y.z:443 (whole 127/8 is loopback, so no other test's
/// port 443 is in the way), a web key directory for wkd.test in both layouts.
final class WKDServer {
    let dir: String
    let address: String
    let ca: String
    let nginx: Nginx
    var log: String { nginx.errorLog }

    init(_ f: ContactsFixture) throws {
        dir = try Tools.scratch().appendingPathComponent("wkd").path
        address = "127.\(Int.random(in: 1...254)).\(Int.random(in: 1...254)).\(Int.random(in: 2...254))"
        let fm = FileManager.default
        ca = f.dir + "/ca.pem"
        let name = "wkd-\(UUID().uuidString.prefix(8))"
        try f.issue(name: name, subject: "/CN=wkd.test",
                    extensions: "subjectAltName=DNS:wkd.test,DNS:openpgpkey.wkd.test\nextendedKeyUsage=serverAuth\n")
        // Hashes from GnuPG's own tool, not from the code under test.
        func hash(_ a: String) throws -> String {
            String(String(decoding: try f.check(["/usr/lib/gnupg/gpg-wks-client", "--print-wkd-hash", a]), as: UTF8.self).split(separator: " ")[0])
        }
        let advanced = dir + "/advanced/.well-known/openpgpkey/wkd.test/hu"
        let direct = dir + "/direct/.well-known/openpgpkey/hu"
        for d in [advanced, direct] { try fm.createDirectory(atPath: d, withIntermediateDirectories: true) }
        // Bob's key under bob@wkd.test needs a user ID with that address.
        let bobFpr = f.fingerprints["bob@example.org"]![0]
        _ = try? f.gpg(["--quick-add-uid", bobFpr, "Bob <bob@wkd.test>"])
        try Data(try f.gpg(["--export", bobFpr])).write(to: URL(fileURLWithPath: advanced + "/" + hash("bob@wkd.test")))
        let carolFpr = f.fingerprints["carol@example.net"]![0]
        _ = try? f.gpg(["--quick-add-uid", carolFpr, "Carol <carol@wkd.test>"])
        try Data(try f.gpg(["--export", carolFpr])).write(to: URL(fileURLWithPath: direct + "/" + hash("carol@wkd.test")))
        try Data(try f.gpg(["--export", carolFpr])).write(to: URL(fileURLWithPath: advanced + "/" + hash("mallory@wkd.test")))
        nginx = try Nginx(dir: dir, http: """
                ssl_certificate \(f.dir)/\(name).pem;
                ssl_certificate_key \(f.dir)/\(name).key;
                server { listen \(address):443 ssl; server_name openpgpkey.wkd.test; root \(dir)/advanced; }
                server { listen \(address):443 ssl; server_name wkd.test; root \(dir)/direct; }
            """, connections: 16)
        for _ in 0..<100 {
            let probe = try Tools.runCommand(["curl", "-s", "-o", "/dev/null", "--cacert", ca, "--resolve", "wkd.test:443:\(address)", "https://wkd.test/"], stdin: [])
            if probe.status == 0 || !nginx.isRunning { break }
            usleep(100_000)
        }
        guard nginx.isRunning else { throw UsageFailure("nginx did not start: \(log)") }
    }

    func stop() { nginx.stop() }
}
