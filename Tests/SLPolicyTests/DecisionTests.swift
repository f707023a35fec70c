import Foundation
import Testing
import SLMessage
@testable import SLPolicy

/// Stands in for the sender at a terminal (step 6). The real prompt reads /dev/tty;
/// the tool tests cover that it is absent without a terminal.
final class ScriptedPrompt: SenderPrompt, @unchecked Sendable {
    var answer: PromptedQuestion?
    var asked: [String] = []
    init(_ answer: PromptedQuestion?) { self.answer = answer }
    func askEscrowQuestion(recipient: String) throws -> PromptedQuestion? {
        asked.append(recipient)
        return answer
    }
}

/// A directory of address books for one test.
struct BookFixture {
    let dir: URL
    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sl-decision-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
    /// A book whose only entry gives `address` an escrow question tagged with the book's name.
    func questionBook(_ name: String, for address: String) throws -> String {
        let text = "BEGIN:VCARD\r\nVERSION:4.0\r\nEMAIL:\(address)\r\nX-SL-ESCROW-QUESTION:asked by \(name)\r\nX-SL-ESCROW-ANSWER:answer-\(name)\r\nEND:VCARD\r\n"
        try text.write(toFile: path(name + ".vcf"), atomically: true, encoding: .utf8)
        return path(name + ".vcf")
    }
    /// The example book: Bob's PGP key, Carol's S/MIME certificate, Erin's question.
    static var exampleBook: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("examples/books/clinic.vcf").path
    }
    func bothKeysBook(for address: String) throws -> String {
        // one contact holding both Bob's PGP key and Carol's certificate
        let example = try String(contentsOfFile: Self.exampleBook, encoding: .utf8)
        let keys = example.components(separatedBy: "\r\n").filter { $0.hasPrefix("KEY") || $0.hasPrefix(" ") }
        let text = (["BEGIN:VCARD", "VERSION:4.0", "EMAIL:\(address)"] + keys + ["END:VCARD", ""]).joined(separator: "\r\n")
        try text.write(toFile: path("both.vcf"), atomically: true, encoding: .utf8)
        return path("both.vcf")
    }
}

func address(_ s: String) throws -> EmailAddress { try EmailAddress(parsing: s) }

func decider(_ conf: String, sender: String = "alice@clinic.example", tls: [String: TLSVerdict] = [:],
             accounts: Set<String> = [], prompt: (any SenderPrompt)? = nil, pending: PendingAnswers? = nil) throws -> Decider {
    let c = try Configuration.parse(conf)
    let s = try c.settings(forSender: sender, senderDomain: String(sender.split(separator: "@")[1]))
    return Decider(settings: s, books: BookShelf(books: c.installation.books, defaultBook: c.installation.defaultBook),
                   escrowAccounts: accounts, tls: StaticTLSCapability(tls), prompt: prompt, pending: pending)
}

@Suite struct DecisionTableTests {
    let none = MessageIntent()

    @Test func step1TLSOnlyWhenEveryConditionHolds() throws {
        let conf = "tls_only = yes\ntls_exclude = bob@excluded.example, .sub.example\nfallback = insecure\n"
        let d = try decider(conf, tls: ["example.org": .verified, "excluded.example": .verified, "a.sub.example": .verified, "weak.example": .encrypted])
        #expect(try d.decide(address("bob@example.org"), intent: none).method == .tls)
        #expect(try d.decide(address("bob@example.org"), intent: none).step == 1)
        // each condition failing on its own leads past step 1 (to the fallback here)
        #expect(try d.decide(address("bob@example.org"), intent: MessageIntent(forceEncryption: "subject trigger +encrypt+")).method == .bounce)
        #expect(try d.decide(address("bob@excluded.example"), intent: none).method == .insecure)
        #expect(try d.decide(address("joe@a.sub.example"), intent: none).method == .insecure)
        #expect(try d.decide(address("joe@weak.example"), intent: none).method == .insecure)
        #expect(try d.decide(address("joe@unknown.example"), intent: none).method == .insecure)
        let off = try decider("tls_only = no\nfallback = insecure\n", tls: ["example.org": .verified])
        #expect(try off.decide(address("bob@example.org"), intent: none).method == .insecure)
        let weakOK = try decider("tls_only = yes\ntls_min_verdict = encrypted\n", tls: ["weak.example": .encrypted])
        #expect(try weakOK.decide(address("joe@weak.example"), intent: none).method == .tls)
    }

    @Test func step2AddressBookPKIAndPreference() throws {
        let books = try BookFixture()
        let both = try books.bothKeysBook(for: "dana@example.org")
        let conf = "book ex = \(BookFixture.exampleBook)\nbook both = \(both)\nsubscribed_books = ex, both\n"
        let d = try decider(conf)
        let bob = try d.decide(address("Bob@Example.ORG"), intent: none)
        #expect(bob.method == .pgp && bob.step == 2)
        #expect(bob.parameters.first { $0.key == .pgp }?.value == "E96466123FDE251413AE02B073AC2627BE6FD5CA")
        let carol = try d.decide(address("carol@example.net"), intent: none)
        #expect(carol.method == .smime)
        #expect(carol.parameters.first { $0.key == .smime }?.value.count == 64)
        let erin = try d.decide(address("erin@example.com"), intent: none)
        #expect(erin.method == .escrow && erin.parameters.map(\.value) == ["question", "book:ex"])
        #expect(try d.decide(address("dana@example.org"), intent: none).method == .pgp)
        let smimeFirst = try decider(conf + "pki_preference = smime\n")
        #expect(try smimeFirst.decide(address("dana@example.org"), intent: none).method == .smime)
        // the book beats TLS-only only when TLS-only does not apply
        let tlsFirst = try decider(conf + "tls_only = yes\n", tls: ["example.org": .verified])
        #expect(try tlsFirst.decide(address("bob@example.org"), intent: none).method == .tls)
    }

    /// The routing says gcm= only when the contact's card does; otherwise
    /// sl-encrypt-smime applies smime_cipher.
    @Test(arguments: [("X-SL-SMIME-GCM:yes\r\n", "yes"), ("X-SL-SMIME-GCM:no\r\n", "no"), ("", nil)] as [(String, String?)])
    func step2SMIMERoutingCarriesTheContactsCipherChoiceOnly(_ property: String, _ gcm: String?) throws {
        let books = try BookFixture()
        let example = try String(contentsOfFile: BookFixture.exampleBook, encoding: .utf8)
        let carol = try #require(example.components(separatedBy: "BEGIN:VCARD").first { $0.contains("carol@example.net") })
        try ("BEGIN:VCARD" + carol.replacingOccurrences(of: "END:VCARD", with: property + "END:VCARD"))
            .write(toFile: books.path("carol.vcf"), atomically: true, encoding: .utf8)
        let r = try decider("book c = \(books.path("carol.vcf"))\ndefault_book = c\n").decide(address("carol@example.net"), intent: none)
        #expect(r.method == .smime)
        #expect(r.parameters.first { $0.key == .gcm }?.value == gcm)
    }

    @Test func step2APinnedFingerprintRoutesToThatKey() throws {
        let books = try BookFixture()
        let pin = String(repeating: "AB", count: 20)
        try "BEGIN:VCARD\r\nVERSION:4.0\r\nEMAIL:kim@example.org\r\nX-SL-PGP-FINGERPRINT:\(pin)\r\nEND:VCARD\r\n"
            .write(toFile: books.path("pin.vcf"), atomically: true, encoding: .utf8)
        let r = try decider("book p = \(books.path("pin.vcf"))\ndefault_book = p\n").decide(address("kim@example.org"), intent: none)
        #expect(r.method == .pgp)
        #expect(r.parameters.first { $0.key == .pgp }?.value == pin)
    }

    @Test(arguments: [
        // (book settings, the book that must win)
        ("preferred_book = p\nsubscribed_books = s1, s2\n", "p"),
        ("subscribed_books = s1, s2\n", "s1"),
        ("subscribed_books = s2\n", "s2"),
        ("", "d"),
    ])
    func step2SearchesBooksInOrder(_ settings: String, _ winner: String) throws {
        let books = try BookFixture()
        var conf = ""
        for name in ["p", "s1", "s2", "d"] { conf += "book \(name) = \(try books.questionBook(name, for: "pat@example.org"))\n" }
        conf += "default_book = d\n" + settings
        let r = try decider(conf).decide(address("pat@example.org"), intent: none)
        #expect(r.method == .escrow)
        #expect(r.parameters.first { $0.key == .qa }?.value == "book:\(winner)")
    }

    @Test func step2PreferredBookIsExclusive() throws {
        // preferred named: only that book is searched, even if a subscribed one has data
        let books = try BookFixture()
        let conf = "book p = \(try books.questionBook("p", for: "other@example.org"))\nbook s = \(try books.questionBook("s", for: "pat@example.org"))\npreferred_book = p\nsubscribed_books = s\nfallback = insecure\n"
        #expect(try decider(conf).decide(address("pat@example.org"), intent: none).method == .insecure)
    }

    @Test func steps3to5EscrowInOrder() throws {
        let conf = """
        fallback = bounce
        escrow_question = global q
        escrow_answer = global a
        [account clinic]
        domains = clinic.example
        escrow_question = account q
        escrow_answer = account a
        [domain clinic.example]
        escrow_question = domain q
        escrow_answer = domain a
        [user login@clinic.example]
        escrow_login = yes
        [user mine@clinic.example]
        escrow_question = my q
        escrow_answer = my a

        """
        let r = try address("rec@example.org")
        let s3 = try decider(conf, sender: "login@clinic.example").decide(r, intent: none)
        #expect(s3.step == 3 && s3.parameters.map(\.value) == ["login"])
        let s4 = try decider(conf, sender: "alice@clinic.example", accounts: [r.key]).decide(r, intent: none)
        #expect(s4.step == 4 && s4.parameters.map(\.value) == ["login"])
        let user = try decider(conf, sender: "mine@clinic.example").decide(r, intent: none)
        #expect(user.step == 5 && user.parameters.last?.value == "default:user")
        let domain = try decider(conf, sender: "alice@clinic.example").decide(r, intent: none)
        #expect(domain.parameters.last?.value == "default:domain")
        let account = try decider(conf.replacingOccurrences(of: "[domain clinic.example]\nescrow_question = domain q\nescrow_answer = domain a\n", with: ""),
                                  sender: "alice@clinic.example").decide(r, intent: none)
        #expect(account.parameters.last?.value == "default:account")
        let global = try decider(conf, sender: "x@elsewhere.example").decide(r, intent: none)
        #expect(global.parameters.last?.value == "default:global")
    }

    @Test func step6AsksTheSenderAndSavesOrKeepsPending() throws {
        let books = try BookFixture()
        let bookPath = books.path("saved.vcf")
        #expect(FileManager.default.createFile(atPath: bookPath, contents: nil))   // a configured, still empty book
        let conf = "book saved = \(bookPath)\ndefault_book = saved\nfallback = bounce\n"
        let r = try address("new@example.org")
        // saved: the book now answers, and the next decision finds it at step 2
        let save = ScriptedPrompt(PromptedQuestion(question: "Our project?", answer: "Apollo", save: true))
        let d = try decider(conf, prompt: save)
        let first = try d.decide(r, intent: none)
        #expect(first.step == 6 && first.parameters.last?.value == "book:saved")
        #expect(save.asked == ["new@example.org"])
        #expect(try decider(conf).decide(r, intent: none).step == 2)
        // not saved: a pending token, and the answer is in a 0600 file, not in the routing
        let pendingDir = books.path("pending")
        let keep = ScriptedPrompt(PromptedQuestion(question: "Q", answer: "secret-answer", save: false))
        let p = try decider("fallback = bounce\n", prompt: keep, pending: PendingAnswers(directory: pendingDir)).decide(r, intent: none)
        let qa = try #require(p.parameters.last?.value)
        #expect(qa.hasPrefix("pending:") && !qa.contains("secret"))
        let file = pendingDir + "/" + qa.dropFirst("pending:".count)
        let attrs = try FileManager.default.attributesOfItem(atPath: file)
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        // declined: the fallback
        let declined = try decider("fallback = insecure\n", prompt: ScriptedPrompt(nil)).decide(r, intent: none)
        #expect(declined.method == .insecure && declined.step == 7)
    }

    @Test func fallbackAndOptOut() throws {
        let r = try address("x@example.org")
        #expect(try decider("fallback = insecure\n").decide(r, intent: none).method == .insecure)
        #expect(try decider("fallback = bounce\n").decide(r, intent: none).method == .bounce)
        #expect(try decider("").decide(r, intent: none).method == .bounce)   // the default fails closed
        // asked for encryption: never insecure
        #expect(try decider("fallback = insecure\n").decide(r, intent: MessageIntent(forceEncryption: "header X-Encrypt")).method == .bounce)
        // an allowed opt-out wins over everything
        let optOut = try decider("tls_only = yes\n", tls: ["example.org": .verified]).decide(r, intent: MessageIntent(insecureOptOut: "subject trigger +insecure+"))
        #expect(optOut.method == .insecure && optOut.step == 0)
    }
}

@Suite struct ConfigurationTests {
    @Test(arguments: [
        ("tls_only = maybe\n", 1),
        ("frobnicate = 1\n", 1),
        ("[user x@y]\naudit_log = /tmp/a\n", 2),
        ("[planet mars]\n", 1),
        ("fallback = drop\n", 1),
        ("domains = a.example\n", 1),
        ("preferred_book = nowhere\n", 0),
        ("escrow_question = only half\n", 0),
        ("[account a]\ndomains = x.example\n[account b]\ndomains = x.example\n", 0),
        ("encrypt_header = X-SL-Encrypt\n", 1),
        ("smime_cipher = aes128-cbc\n", 1),
        ("tls_only = no\nsmime_cipher = gcm\n", 2),
    ])
    func mistakesAreErrorsWithLineNumbers(_ text: String, _ line: Int) {
        #expect {
            _ = try Configuration.parse(text, source: "t.conf")
        } throws: { error in
            (error as? ConfigurationError)?.line == line
        }
    }

    @Test func smimeCipherIsCBCUnlessSetToGCM() throws {
        #expect(try Configuration.parse("").installation.smime.cipher == .aes256CBC)
        #expect(try Configuration.parse("smime_cipher = AES256-GCM\n").installation.smime.cipher == .aes256GCM)
        #expect(try Configuration.parse("smime_cipher = aes256-gcm\nsmime_cipher = aes256-cbc\n").installation.smime.cipher == .aes256CBC)
        #expect {
            _ = try Configuration.parse("[user x@y]\nsmime_cipher = aes256-gcm\n", source: "t.conf")
        } throws: { error in
            (error as? ConfigurationError).map { $0.line == 2 && $0.message.contains("installation setting") } == true
        }
    }

    @Test func mostSpecificLevelWins() throws {
        let c = try Configuration.parse("""
        fallback = insecure
        tls_only = no
        [account a]
        domains = a.example
        tls_only = yes
        [domain a.example]
        fallback = bounce
        [user boss@a.example]
        fallback = insecure
        """)
        let boss = try c.settings(forSender: "boss@a.example", senderDomain: "a.example")
        #expect(boss.fallback == .insecure && boss.tlsOnly && boss.account == "a")
        let staff = try c.settings(forSender: "staff@a.example", senderDomain: "a.example")
        #expect(staff.fallback == .bounce && staff.tlsOnly)
        let outsider = try c.settings(forSender: "x@b.example", senderDomain: "b.example")
        #expect(outsider.fallback == .insecure && !outsider.tlsOnly && outsider.account == nil)
    }

    @Test func tlsCacheEntriesExpire() throws {
        let dir = try BookFixture()
        let now = Date(timeIntervalSince1970: 1_000_000)
        let data = try TLSCacheFile.encode([
            "fresh.example": .init(verdict: .verified, checked: 999_000, ttl: 3600),
            "stale.example": .init(verdict: .verified, checked: 990_000, ttl: 3600),
        ])
        try data.write(to: URL(fileURLWithPath: dir.path("tls.json")))
        let cache = try TLSCacheFile(path: dir.path("tls.json")).load(now: now)
        #expect(cache.finding(for: "fresh.example")?.verdict == .verified)
        #expect(cache.finding(for: "stale.example") == nil)
        #expect(try TLSCacheFile(path: dir.path("missing.json")).load().finding(for: "fresh.example") == nil)
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: dir.path("bad.json")))
        #expect(throws: ConfigurationError.self) { try TLSCacheFile(path: dir.path("bad.json")).load() }
    }
}

@Suite struct BookFileNameTests {
    @Test(arguments: ["\"../../etc/x\"@example.org", "\"a/b\"@example.org", "\".hidden\"@example.org", "plain@example.org"])
    func savedContactFileNamesStayInTheBook(_ address: String) throws {
        let name = BookShelf.fileName(for: try EmailAddress(parsing: address))
        #expect(!name.contains("/") && !name.hasPrefix("."))
        #expect(name.hasSuffix(".vcf"))
    }
}
