import Foundation
import SLMessage

/// The envelope as sendmail takes it on the command line.
public struct EnvelopeOptions: Sendable {
    /// `-f`: the envelope sender; "" or "<>" for the null sender.
    public var sender: String?
    /// Recipients given as arguments.
    public var recipients: [EmailAddress]
    /// `-t`: take recipients from To, Cc and Bcc, and remove Bcc.
    public var takeRecipientsFromHeaders: Bool
    /// `--account`: the policy account, instead of finding it from the sender's domain.
    public var account: String?
    /// `--require-tls` (RFC 8689's REQUIRETLS, asked by the submitter): no recipient
    /// is reached in the clear. Internal, insecure and fallback-bounce decisions
    /// become TLS-only (enforced, verified TLS) and the fallback is bounce.
    public var requireTLS: Bool

    public init(sender: String? = nil, recipients: [EmailAddress] = [], takeRecipientsFromHeaders: Bool = false, account: String? = nil,
                requireTLS: Bool = false) {
        self.sender = sender
        self.recipients = recipients
        self.takeRecipientsFromHeaders = takeRecipientsFromHeaders
        self.account = account
        self.requireTLS = requireTLS
    }
}

/// One input message after classification: the decision for every recipient and the
/// messages to pass on (one per method group, plus a delivery report for bounces).
public struct ClassifiedMessage: Sendable {
    public var messageID: String?
    public var sender: String
    public var decisions: [RecipientDecision]
    public var output: [Message]
}

/// A policy refusal that cannot become a delivery report. Exit 69 (EX_UNAVAILABLE).
public struct PolicyRefusal: Error, CustomStringConvertible {
    public let description: String
}

/// Classifies each message of a stream: strips untrusted X-SL-* fields, works out the
/// envelope, decides per recipient, and splits the message by method.
public final class Classifier {
    let configuration: Configuration
    let options: EnvelopeOptions
    let books: BookShelf
    let tls: any TLSCapabilityProvider
    let escrowAccounts: Set<String>
    let prompt: (any SenderPrompt)?
    let hostname: String
    let pending: PendingAnswers?
    let now: () -> Date

    public init(configuration: Configuration, options: EnvelopeOptions, prompt: (any SenderPrompt)?,
                hostname: String, liveTLS: (any TLSCapabilityProvider)? = nil,
                storeAccounts: Set<String> = [],
                now: @escaping () -> Date = Date.init) throws {
        self.configuration = configuration
        self.options = options
        self.prompt = configuration.installation.askSender ? prompt : nil
        self.hostname = configuration.installation.hostname ?? hostname
        self.now = now
        books = BookShelf(books: configuration.installation.books, defaultBook: configuration.installation.defaultBook)
        var providers: [any TLSCapabilityProvider] = [StaticTLSCapability(configuration.installation.transport.tlsStatic)]
        if let cache = configuration.installation.transport.tlsCache { providers.append(try TLSCache.store(at: cache).load(now: now())) }
        if let liveTLS { providers.append(liveTLS) }
        tls = TLSCapabilityChain(providers)
        // Login accounts: the escrow store's (sl-escrow account add), and any the
        // escrow_accounts list names (accounts kept elsewhere, such as a portal's).
        escrowAccounts = try (configuration.installation.escrowAccounts.map(EscrowAccountList.load) ?? []).union(storeAccounts)
        pending = configuration.installation.pendingAnswersDirectory.map(PendingAnswers.init)
    }

    public func classify(_ input: Message) throws -> ClassifiedMessage {
        var message = input
        message.header.removeEnvelopeFields()     // from outside: untrusted
        let sender = try envelopeSender(of: message)
        let settings = try configuration.settings(forSender: sender, account: options.account)

        // Recipients: arguments, or To/Cc/Bcc with -t (Bcc then removed from the copy).
        var recipients: [(EmailAddress, isBcc: Bool)] = options.recipients.map { ($0, false) }
        if options.takeRecipientsFromHeaders {
            recipients += try SendmailEnvelope.takeHeaderRecipients(from: &message).map { ($0.address, $0.fromBcc) }
        }
        // A recipient the header section does not name (Bcc with -t, or an envelope
        // recipient as Postfix passes them, the Bcc field already gone) is hidden:
        // it travels in a copy of its own, so no key ID, RecipientInfo or notice
        // shows it to anyone else. A To or Cc that does not parse names no one.
        let visible = SendmailEnvelope.visibleRecipients(message.header)
        recipients = recipients.map { ($0.0, isBcc: $0.isBcc || !visible.contains($0.0.key)) }
        var seen = Set<String>()
        recipients = recipients.filter { seen.insert($0.0.key).inserted }
        guard !recipients.isEmpty else {
            throw options.takeRecipientsFromHeaders
                ? MessageError.malformed("message \(message.index): no recipients in To, Cc or Bcc")
                : MessageError.malformed("message \(message.index): no recipients (give them as arguments or use -t)")
        }

        let intent = try readIntent(&message, settings)
        let decider = Decider(settings: settings, books: books, escrowAccounts: escrowAccounts, tls: tls, prompt: prompt,
                              pending: pending)
        var decisions = try recipients.map { try decider.decide($0.0, intent: intent, isBcc: $0.isBcc) }
        if options.requireTLS {
            // A fallback bounce for want of a method becomes TLS-only too: enforced,
            // verified TLS is a secure method, and its failure is reported anyway.
            // A bounce because the sender asked for encryption stays.
            decisions = decisions.map { d in
                let fallbackBounce = d.method == .bounce && d.step == 7 && intent.forceEncryption == nil
                guard d.method == .internal || d.method == .insecure || fallbackBounce else { return d }
                var tls = d
                tls.method = .tls
                tls.reason = d.reason + "; the submitter requires TLS (--require-tls): enforced, verified TLS or a delivery report"
                return tls
            }
        }
        let fallback: FallbackAction = options.requireTLS ? .bounce : settings.fallback

        var output: [Message] = []
        var digest: String?          // a pass over the whole body: only for a copy that goes on
        for group in Self.groups(decisions) where group.method != .bounce {
            var copy = message
            var env = Envelope(sender: sender,
                               recipients: group.members.map { Envelope.Recipient(address: $0.recipient.addrSpec, parameters: $0.parameters) },
                               method: group.method, tls: group.method != .tls ? .opportunistic
                                   : settings.tlsMinimumVerdict == .dane ? .dane : .required,
                               fallback: fallback, account: settings.account)
            if digest == nil { digest = try MessageDigest.of(message) }
            env.messageDigest = digest
            try env.write(into: &copy.header)
            if copy.fromLine == nil || options.sender != nil {
                copy.fromLine = MboxWriter.fromLine(sender: sender, date: now())
            }
            output.append(copy)
        }
        let bounced = decisions.filter { $0.method == .bounce }
        if !bounced.isEmpty {
            guard !sender.isEmpty else {
                throw PolicyRefusal(description: "message \(message.index): no secure method for \(bounced.map(\.recipient.addrSpec).joined(separator: ", ")) and the null sender cannot receive a delivery report")
            }
            output.append(try DeliveryReport.routed(
                for: message, sender: sender, account: settings.account, hostname: hostname, date: now(),
                failures: bounced.map { .init(recipient: $0.recipient.addrSpec, status: .securityPolicy, diagnostic: $0.reason) }))
        }
        return ClassifiedMessage(messageID: message.header["Message-ID"], sender: sender, decisions: decisions, output: output)
    }

    /// -f, else the sender on the mbox From line, else the first From: address.
    func envelopeSender(of message: Message) throws -> String {
        if let f = options.sender { return try SendmailEnvelope.sender(option: f) }
        guard let sender = SendmailEnvelope.sender(of: message) else {
            throw MessageError.malformed("message \(message.index): no envelope sender (give -f, or a From: field)")
        }
        return sender
    }

    /// Subject triggers and the encrypt header. A trigger is removed from the Subject
    /// when strip_triggers is on, so the recipient never sees it.
    func readIntent(_ message: inout Message, _ s: EffectiveSettings) throws -> MessageIntent {
        var intent = MessageIntent()
        let subject = message.header.first("Subject")?.decodedValue ?? ""
        if !s.encryptTrigger.isEmpty, subject.range(of: s.encryptTrigger, options: .caseInsensitive) != nil {
            intent.forceEncryption = "subject trigger \(s.encryptTrigger)"
            if s.stripTriggers { message.header.removeText(s.encryptTrigger, fromField: "Subject") }
        } else if let v = message.header[s.encryptHeader]?.lowercased(), ["yes", "true", "1", "on"].contains(v) {
            intent.forceEncryption = "header \(s.encryptHeader)"
            if s.stripTriggers { message.header.remove(s.encryptHeader) }
        } else if let t = s.insecureTrigger, s.allowInsecureTrigger, subject.range(of: t, options: .caseInsensitive) != nil {
            intent.insecureOptOut = "subject trigger \(t)"
            if s.stripTriggers { message.header.removeText(t, fromField: "Subject") }
        } else if s.allowInsecureTrigger, TLSRequiredField.optsOut(message.header) {
            // RFC 8689's standard opt-out, under the same policy as the trigger. The
            // field stays: it asks the relays after us to skip their TLS policies too.
            intent.insecureOptOut = "TLS-Required: No"
        }
        return intent
    }

    struct Group { var method: DeliveryMethod; var members: [RecipientDecision] }

    /// One group per method, in a fixed method order; every Bcc recipient alone, so no
    /// copy (and no PGP key list) ever shows a Bcc recipient to the others.
    static func groups(_ decisions: [RecipientDecision]) -> [Group] {
        var out: [Group] = []
        for method in DeliveryMethod.allCases {
            let members = decisions.filter { $0.method == method }
            let open = members.filter { !$0.isBcc }
            if !open.isEmpty { out.append(Group(method: method, members: open)) }
            for b in members where b.isBcc { out.append(Group(method: method, members: [b])) }
        }
        return out
    }
}

/// The list of addresses that already have escrow login accounts: one per line, `#`
/// comments, compared by normalised address.
public enum EscrowAccountList {
    public static func load(_ path: String) throws -> Set<String> {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(path, 0, "cannot read the escrow account list named by escrow_accounts")
        }
        var keys = Set<String>()
        for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.isEmpty || t.hasPrefix("#") { continue }
            do { keys.insert(try EmailAddress(parsing: t).key) } catch {
                throw ConfigurationError(path, n + 1, "not an address: \(error)")
            }
        }
        return keys
    }
}
