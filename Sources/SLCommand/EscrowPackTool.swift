#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLEscrow
import SLMessage
import SLPolicy
import SLTransport

/// sl-escrow-pack without its argument parsing.
///
/// Every message routed to escrow is sealed into the store and replaced by one
/// notice per recipient; every other message passes through byte for byte. The
/// answers come from where sl-classify found them (an address book, a default
/// question of the configuration, or a pending answer the sender typed), never
/// from the message. Nothing is written to stdout unless the whole stream
/// succeeded; sealed records of a failed run are never announced and expire.
public struct EscrowPackTool {
    public var configurationPath: String?
    public var storeDirectory: String?
    public var singleMessage = false

    public init() {}

    static let tool = "sl-escrow-pack"

    public func run() throws {
        let configuration = try ConfigurationLocation.loadIfPresent(configurationPath) ?? Configuration()
        let installation = configuration.installation
        let context = try EscrowContext(installation, source: configuration.source, storeDirectory: storeDirectory)
        let kdf: KDFParameters
        do {
            kdf = try KDFParameters(opsLimit: installation.escrowKDFPasses, memoryLimit: installation.escrowKDFMemoryMiB << 20)
        } catch {
            throw ConfigurationError(configuration.source, 0, "escrow_kdf_passes / escrow_kdf_memory: \(error)")
        }
        let templates: NoticeTemplates
        do {
            templates = try NoticeTemplates.load(subject: installation.escrowNoticeSubject, textFile: installation.escrowNoticeText,
                                                 htmlFile: installation.escrowNoticeHTML)
        } catch {
            throw ConfigurationError(configuration.source, 0, "\(error)")
        }
        // Messages are packed on every core (at most four): Argon2id is most of the
        // work when a bulk run has many different recipients. Each worker has its
        // own store connection; each derivation takes escrow_kdf_memory while it runs.
        let workers = max(1, min(4, ProcessInfo.processInfo.activeProcessorCount))
        var stores = [context.store]
        for _ in 1..<workers { stores.append(try context.anotherStore()) }
        let packer = Packer(configuration: configuration, stores: stores, kdf: kdf, templates: templates,
                            portal: context.portal, hostname: context.hostname)

        let filter = try StreamFilter(tool: Self.tool)
        if singleMessage { filter.framing = .single }
        filter.bareOutputForBareInput = true       // alone on one bare message: no mbox framing
        try filter.process(workers: workers) { message, worker in
            guard let envelope = try Envelope.read(from: message.header), envelope.method == .escrow,
                  !Self.isNotice(envelope) else { return [message] }
            return try packer.pack(message, envelope, worker: worker, now: Date())
        }
        try filter.commit()
        // The notices are out: the answers the sender typed are no longer needed.
        for path in packer.consumedPendingAnswers { unlink(path) }
    }

    /// A notice made by an earlier run (the stream went through twice): leave it.
    static func isNotice(_ envelope: Envelope) -> Bool {
        !envelope.recipients.isEmpty && envelope.recipients.allSatisfy { $0.parameter("escrow") == "notice" }
    }

    /// Seals messages and writes notices; keeps each recipient's answer key for the
    /// whole run, so the memory-hard KDF runs once per recipient, not per message.
    /// Used by several workers at once: worker `i` uses `stores[i]` only; the key
    /// cache and the list of used pending answers are locked.
    final class Packer: @unchecked Sendable {
        let configuration: Configuration
        let stores: [EscrowStore]
        let kdf: KDFParameters
        let templates: NoticeTemplates
        let portal: String
        let hostname: String
        let books: BookShelf
        private let keys = AnswerKeys()
        private let lock = NSLock()
        private var consumed: [String] = []

        init(configuration: Configuration, stores: [EscrowStore], kdf: KDFParameters, templates: NoticeTemplates, portal: String, hostname: String) {
            self.configuration = configuration; self.stores = stores; self.kdf = kdf
            self.templates = templates; self.portal = portal; self.hostname = hostname
            books = BookShelf(books: configuration.installation.books, defaultBook: configuration.installation.defaultBook)
        }

        var consumedPendingAnswers: [String] { lock.lock(); defer { lock.unlock() }; return consumed }

        func pack(_ message: Message, _ envelope: Envelope, worker: Int = 0, now: Date) throws -> [Message] {
            let store = stores[worker]
            var recipients: [EscrowRecipient] = []
            for r in envelope.recipients {
                switch r.parameter("escrow") {
                case "login":
                    recipients.append(EscrowRecipient(address: r.address, verification: .login))
                case "question":
                    let (question, answer) = try questionAndAnswer(for: r, envelope: envelope)
                    guard !Answer.normalize(answer).isEmpty, !question.isEmpty else {
                        throw MissingAnswer(description: "\(r.address): the escrow question or its answer is empty; nothing packed")
                    }
                    let cacheKey = [r.address.lowercased(), question, Answer.normalize(answer)].joined(separator: "\u{0}")
                    let key = try keys.key(for: cacheKey) { try AnswerKey.derive(answer: answer, parameters: kdf) }
                    recipients.append(EscrowRecipient(address: r.address, verification: .question(question, key)))
                default:
                    throw MessageError.invalidField("message \(message.index): \(r.address) is routed to escrow without escrow=question or escrow=login")
                }
            }
            guard !recipients.isEmpty else { throw MessageError.malformed("message \(message.index): routed to escrow with no recipients") }

            var original = message
            original.fromLine = nil
            original.header.removeEnvelopeFields()
            let expires = expiry(of: original, now: now)
            let packed: PackedMessage
            do {
                packed = try store.pack(original, sender: envelope.sender, recipients: recipients, created: now, expires: expires,
                                        messageCenter: configuration.installation.escrowMessageCenter)
            } catch EscrowError.noAccount(let address) {
                throw EscrowAccountMissing(description: "message \(message.index): \(address) has no escrow account (create it with sl-escrow account add \(address)); nothing packed")
            }

            let originalFrom = original.header["From"] ?? envelope.sender
            let from = configuration.installation.escrowNoticeFrom ?? originalFrom
            var notices: [Message] = []
            for (link, r) in zip(packed.links, recipients) {
                var question: String? = nil
                if case .question(let q, _) = r.verification { question = q }
                let values = NoticeTemplates.Values(
                    sender: originalFrom, recipient: link.address,
                    link: EscrowLink(id: packed.id, index: link.index, secret: link.secret).url(base: portal),
                    question: question, expires: expires, id: packed.id)
                var notice = try templates.notice(values, from: from, hostname: hostname, date: now)
                notice.index = message.index
                notice.fromLine = MboxWriter.fromLine(sender: envelope.sender, date: now)
                let routing = Envelope(sender: envelope.sender,
                                       recipients: [Envelope.Recipient(address: link.address, parameters: [("escrow", "notice")])],
                                       method: .escrow, tls: .opportunistic, fallback: .insecure, account: envelope.account)
                try routing.write(into: &notice.header)
                notices.append(notice)
            }
            return notices
        }

        /// Where sl-classify said the question and answer are.
        func questionAndAnswer(for r: Envelope.Recipient, envelope: Envelope) throws -> (String, String) {
            guard let qa = r.parameter("qa"), let colon = qa.firstIndex(of: ":") else {
                throw MessageError.invalidField("\(r.address): escrow=question without qa=SOURCE:NAME")
            }
            let kind = qa[..<colon], name = String(qa[qa.index(after: colon)...])
            switch kind {
            case "book":
                guard let book = try books.book(named: name) else {
                    throw ConfigurationError(configuration.source, 0, "\(r.address): address book \(name) is not configured")
                }
                guard let e = book.contact(for: r.address)?.escrow else {
                    throw MissingAnswer(description: "\(r.address): address book \(name) no longer has an escrow question for them; nothing packed")
                }
                return (e.question, e.answer)
            case "default":
                let settings = try configuration.settings(forSender: envelope.sender, account: envelope.account)
                guard let d = settings.escrowDefault else {
                    throw MissingAnswer(description: "\(r.address): no default escrow question applies to \(envelope.sender) any more; nothing packed")
                }
                return (d.question, d.answer)
            case "pending":
                // The token names a file: it must be what PendingAnswers makes, never a path.
                guard name.count == 32, name.allSatisfy({ $0.isHexDigit && !$0.isUppercase }),
                      let directory = configuration.installation.pendingAnswersDirectory else {
                    throw MessageError.invalidField("\(r.address): qa=pending token is not valid")
                }
                let path = directory + "/" + name
                guard let data = FileManager.default.contents(atPath: path),
                      let json = try? JSONSerialization.jsonObject(with: data) as? [String: String],
                      let question = json["question"], let answer = json["answer"] else {
                    throw MissingAnswer(description: "\(r.address): the answer the sender gave is gone (\(path)); nothing packed")
                }
                guard json["recipient"].map({ $0.lowercased() == r.address.lowercased() }) ?? false else {
                    throw MessageError.invalidField("\(r.address): the pending answer belongs to another recipient")
                }
                lock.lock()
                if !consumed.contains(path) { consumed.append(path) }
                lock.unlock()
                return (question, answer)
            default:
                throw MessageError.invalidField("\(r.address): unknown qa source \"\(kind)\"")
            }
        }

        /// escrow_expiry days from now, or what the message's own `Expires:` field
        /// asks for (at least an hour), never more than escrow_expiry_max days.
        func expiry(of message: Message, now: Date) -> Date {
            let installation = configuration.installation
            let longest = now.addingTimeInterval(installation.escrowExpiryMaxDays * 86_400)
            var expires = now.addingTimeInterval(installation.escrowExpiryDays * 86_400)
            if let field = message.header["Expires"], let asked = RFC5322Date.parse(field) {
                expires = max(asked, now.addingTimeInterval(3600))
            }
            return min(expires, longest)
        }
    }
}

/// Answer keys of a run, one per recipient, question and answer. Workers that
/// want the same key at once wait for one derivation rather than each making one.
final class AnswerKeys: @unchecked Sendable {
    private final class Slot {
        let lock = NSLock()
        var key: AnswerKey?
    }
    private let lock = NSLock()
    private var slots: [String: Slot] = [:]

    func key(for name: String, derive: () throws -> AnswerKey) throws -> AnswerKey {
        lock.lock()
        let slot: Slot
        if let s = slots[name] { slot = s } else { slot = Slot(); slots[name] = slot }
        lock.unlock()
        slot.lock.lock()
        defer { slot.lock.unlock() }
        if let k = slot.key { return k }
        let k = try derive()
        slot.key = k
        return k
    }
}

/// The pieces every escrow command needs from the configuration.
struct EscrowContext {
    let store: EscrowStore
    let portal: String
    let hostname: String
    private let directory: String
    private let pepper: SecretBytes?
    private let maximumAttempts: Int

    init(_ installation: InstallationSettings, source: String, storeDirectory: String?) throws {
        guard let directory = storeDirectory ?? installation.effectiveEscrowStore else {
            throw ConfigurationError(source, 0, "no escrow store: set escrow_store or state_directory, or HOME")
        }
        var pepper: SecretBytes? = nil
        if let path = installation.escrowPepperFile {
            do { pepper = try Pepper.load(path: path) } catch {
                throw ConfigurationError(source, 0, "escrow_pepper_file: \(error)")
            }
        }
        // Not a configuration error: a busy or unwritable store is EscrowError.storage,
        // exit 75, so Postfix defers the message instead of bouncing it.
        self.directory = directory
        self.pepper = pepper
        maximumAttempts = installation.escrowMaxAttempts
        store = try EscrowStore(directory: directory, pepper: pepper, maximumAttempts: maximumAttempts)
        hostname = installation.hostname ?? localHostName()
        portal = installation.escrowURL ?? "https://\(hostname)/sl-escrow"
    }

    /// One more connection to the same store, for another worker thread.
    func anotherStore() throws -> EscrowStore {
        try EscrowStore(directory: directory, pepper: pepper, maximumAttempts: maximumAttempts)
    }
}

/// A login-mode recipient without an account. Exit 75: the caller keeps the
/// message until the account exists.
public struct EscrowAccountMissing: Error, CustomStringConvertible {
    public let description: String
}

/// The answer sl-classify pointed at is gone. Exit 75: the caller keeps the
/// message; classifying it again finds the current answer.
public struct MissingAnswer: Error, CustomStringConvertible {
    public let description: String
}

/// RFC 5322 3.3 dates as senders write them (day name optional, seconds optional,
/// numeric zone or the obsolete names).
enum RFC5322Date {
    static func parse(_ text: String) -> Date? {
        var s = text.trimmingCharacters(in: .whitespaces)
        if let comment = s.firstIndex(of: "(") { s = s[..<comment].trimmingCharacters(in: .whitespaces) }
        if let comma = s.firstIndex(of: ",") { s = s[s.index(after: comma)...].trimmingCharacters(in: .whitespaces) }
        for format in ["d MMM yyyy HH:mm:ss Z", "d MMM yyyy HH:mm Z", "d MMM yyyy HH:mm:ss zzz", "d MMM yyyy HH:mm zzz"] {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.dateFormat = format
            if let d = f.date(from: s) { return d }
        }
        return nil
    }
}
