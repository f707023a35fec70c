#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage
import SLPolicy

/// Seals messages and writes notices; keeps each recipient's answer key for the
/// whole run, so the memory-hard KDF runs once per recipient, not per message.
/// Used by several workers at once: worker `i` uses `stores[i]` only; the key
/// cache and the list of used pending answers are locked.
public final class Packer: @unchecked Sendable {
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

    /// `warn`: where a line for the admin goes (stderr, in sl-escrow-pack).
    let warn: (String) -> Void

    public init(configuration: Configuration, stores: [EscrowStore], kdf: KDFParameters, templates: NoticeTemplates, portal: String,
                hostname: String, warn: @escaping (String) -> Void) {
        self.warn = warn
        self.configuration = configuration; self.stores = stores; self.kdf = kdf
        self.templates = templates; self.portal = portal; self.hostname = hostname
        books = BookShelf(books: configuration.installation.books, defaultBook: configuration.installation.defaultBook)
    }

    public var consumedPendingAnswers: [String] { lock.lock(); defer { lock.unlock() }; return consumed }

    public func pack(_ message: Message, _ envelope: Envelope, worker: Int = 0, now: Date) throws -> [Message] {
        let store = stores.isEmpty ? nil : stores[worker]
        // A recipient whose answer is gone or who has no login account is left out
        // and reported to the sender; the others get their notices.
        var refusals = RecipientRefusals(warn: warn)
        var plans: [Plan] = []
        for r in envelope.recipients {
            if let p = try refusals.attempt(r.address, { try plan(r, envelope: envelope, message: message, store: store) }) {
                plans.append(p)
            }
        }
        return try refusals.finish(message, envelope, hostname: hostname) { copy in
            try seal(copy, envelope, plans, store: store, now: now)
        }
    }

    /// How one recipient will prove who they are: a login (nil question) or a
    /// question and its answer.
    struct Plan {
        let address: String
        let question: (question: String, answer: String)?
    }

    /// The plan for one recipient, checked: the question and answer are not empty.
    /// A login recipient without an account is sealed for anyway: their notice's
    /// link lets them set a password (sl-portal), which makes the account.
    func plan(_ r: Envelope.Recipient, envelope: Envelope, message: Message, store: EscrowStore?) throws -> Plan {
        switch r.escrowMode {
        case .login:
            return Plan(address: r.address, question: nil)
        case .question:
            let (question, answer) = try questionAndAnswer(for: r, envelope: envelope)
            guard !Answer.normalize(answer).isEmpty, !question.isEmpty else {
                throw EscrowRefusal(recipient: r.address, problem: "the escrow question or its answer is empty")
            }
            return Plan(address: r.address, question: (question, answer))
        default:
            throw MessageError.invalidField("message \(message.index): \(r.address) is routed to escrow without escrow=question or escrow=login")
        }
    }

    /// Seals the message for the recipients (answer keys derived once per run)
    /// and makes one notice each; without a store (a dry run), only the notices.
    func seal(_ message: Message, _ envelope: Envelope, _ plans: [Plan], store: EscrowStore?, now: Date) throws -> [Message] {
        guard !plans.isEmpty else { throw MessageError.malformed("message \(message.index): routed to escrow with no recipients") }

        var original = message
        original.fromLine = nil
        original.header.removeEnvelopeFields()
        let expires = expiry(of: original, now: now)
        var links: [(address: String, url: String, setsPassword: Bool)] = []
        var id = "DRY-RUN"
        if let store {
            var recipients: [EscrowRecipient] = []
            for p in plans {
                guard let (question, answer) = p.question else {
                    recipients.append(EscrowRecipient(address: p.address, verification: .login))
                    continue
                }
                let cacheKey = [p.address.lowercased(), question, Answer.normalize(answer)].joined(separator: "\u{0}")
                let key = try keys.key(for: cacheKey) { try AnswerKey.derive(answer: answer, parameters: kdf) }
                recipients.append(EscrowRecipient(address: p.address, verification: .question(question, key)))
            }
            let packed: PackedMessage
            do {
                packed = try store.pack(original, sender: envelope.sender, recipients: recipients, created: now, expires: expires,
                                        messageCenter: configuration.installation.escrow.messageCenter)
            } catch EscrowError.noAccount(let address) {
                // Checked per recipient above: here only the sender's own account
                // (escrow_message_center) or an account removed meanwhile.
                throw EscrowRefusal(recipient: address, problem: "no escrow login account (create it with sl-escrow account add \(address)); nothing packed")
            }
            id = packed.id
            links = packed.links.map {
                ($0.address, EscrowLink(id: packed.id, index: $0.index, secret: $0.secret).url(base: portal), $0.setsPassword)
            }
        } else {
            links = plans.enumerated().map { ($1.address, "\(portal)/DRY-RUN/\($0 + 1)#not-sealed-dry-run", false) }
        }

        let originalFrom = original.header["From"] ?? envelope.sender
        let from = configuration.installation.escrow.noticeFrom ?? originalFrom
        var notices: [Message] = []
        for (link, p) in zip(links, plans) {
            let values = NoticeTemplates.Values(sender: originalFrom, recipient: link.address, link: link.url,
                                                question: p.question?.question, expires: expires, id: id,
                                                setsPassword: link.setsPassword)
            var notice = try templates.notice(values, from: from, hostname: hostname, date: now)
            notice.index = message.index
            notice.fromLine = MboxWriter.fromLine(sender: envelope.sender, date: now)
            var routing = Envelope(sender: envelope.sender,
                                   recipients: [Envelope.Recipient(address: link.address, parameters: [(.escrow, Envelope.EscrowMode.notice.rawValue)])],
                                   method: .escrow, tls: .opportunistic, fallback: .insecure, account: envelope.account)
            // For the audit records of the notice, here and in sl-deliver.
            if store != nil { routing.escrowID = id }
            routing.originalMessageID = original.header["Message-ID"]
            routing.messageDigest = envelope.messageDigest
            try routing.write(into: &notice.header)
            notices.append(notice)
        }
        return notices
    }

    /// Where sl-classify said the question and answer are.
    func questionAndAnswer(for r: Envelope.Recipient, envelope: Envelope) throws -> (String, String) {
        guard let source = r.answerSource else {
            throw MessageError.invalidField("\(r.address): escrow=question without a valid qa=SOURCE:NAME")
        }
        switch source {
        case .book(let name):
            guard let book = try books.book(named: name) else {
                throw ConfigurationError(configuration.source, 0, "\(r.address): address book \(name) is not configured")
            }
            guard let e = book.contact(for: r.address)?.escrow else {
                throw EscrowRefusal(recipient: r.address, problem: "address book \(name) no longer has an escrow question for them")
            }
            return (e.question, e.answer)
        case .defaultQuestion:
            let settings = try configuration.settings(forSender: envelope.sender, account: envelope.account)
            guard let d = settings.escrowDefault else {
                throw EscrowRefusal(recipient: r.address, problem: "no default escrow question applies to \(envelope.sender) any more")
            }
            return (d.question, d.answer)
        case .pending(let name):
            guard let directory = configuration.installation.pendingAnswersDirectory else {
                throw MessageError.invalidField("\(r.address): qa=pending but no state directory")
            }
            guard let pending = try PendingAnswers(directory: directory).read(token: name) else {
                throw EscrowRefusal(recipient: r.address, problem: "the answer the sender gave is gone (\(directory)/\(name))")
            }
            guard pending.recipient.lowercased() == r.address.lowercased() else {
                throw MessageError.invalidField("\(r.address): the pending answer belongs to another recipient")
            }
            lock.lock()
            if !consumed.contains(pending.path) { consumed.append(pending.path) }
            lock.unlock()
            return (pending.question, pending.answer)
        }
    }

    /// escrow_expiry days from now, or what the message's own `Expires:` field
    /// asks for (at least an hour), never more than escrow_expiry_max days.
    func expiry(of message: Message, now: Date) -> Date {
        let installation = configuration.installation
        let longest = now.addingTimeInterval(installation.escrow.expiryMaxDays * 86_400)
        var expires = now.addingTimeInterval(installation.escrow.expiryDays * 86_400)
        if let field = message.header["Expires"], let asked = RFC5322Date.parse(field) {
            expires = max(asked, now.addingTimeInterval(3600))
        }
        return min(expires, longest)
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

/// An escrow recipient who cannot be sealed for: a login recipient without an
/// account, or a question whose answer is gone or empty. In a pipeline the
/// recipient is left out and reported to the sender; where that cannot be (the
/// sender's own account for the message center) exit 75: the caller keeps the
/// message until the account or the answer is there.
public struct EscrowRefusal: RecipientRefusal, SysexitReporting {
    public let recipient: String
    public let problem: String
    public var sysexit: Sysexit { .tempFail }
    public var description: String { "\(recipient): \(problem)" }
    public var refusedRecipient: String { recipient }
    public var refusalReason: String { problem }
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
