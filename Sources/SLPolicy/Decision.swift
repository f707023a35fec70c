import Foundation
import SLMessage

/// The outcome for one recipient: the method, why, and the routing parameters the
/// next tools need (see sl(7)).
public struct RecipientDecision: Sendable {
    public var recipient: EmailAddress
    public var method: DeliveryMethod
    /// The reason in words, for --explain, the audit log and delivery reports.
    public var reason: String
    /// The decision step that chose the method (1-6 as in sl-classify(1)), 0 for a
    /// sender opt-out or an internal domain, 7 for the fallback.
    public var step: Int
    public var parameters: [(key: Envelope.RoutingKey, value: String)]
    /// Whether this recipient was a Bcc recipient (it then travels in its own copy).
    public var isBcc: Bool

    public var tlsRequirement: TLSRequirement { method == .tls ? .required : .opportunistic }
}

/// What the sender asked for in this message.
public struct MessageIntent: Sendable {
    /// Set when the sender asked for more than TLS-only (subject trigger or header);
    /// the text says how, for the reason.
    public var forceEncryption: String?
    /// Set when the sender opted out of protection and the policy allows it.
    public var insecureOptOut: String?
    public init(forceEncryption: String? = nil, insecureOptOut: String? = nil) {
        self.forceEncryption = forceEncryption
        self.insecureOptOut = insecureOptOut
    }
}

/// Step 6 of the decision: asking the sender for a question and answer. Implemented by
/// the command layer on the controlling terminal; absent in batch use.
public protocol SenderPrompt {
    /// Asks for a question and answer for `recipient`; nil when the sender declines.
    func askEscrowQuestion(recipient: String) throws -> PromptedQuestion?
}

public struct PromptedQuestion: Sendable {
    public var question: String
    public var answer: String
    /// The sender agreed to keep the pair in the address book.
    public var save: Bool
    public init(question: String, answer: String, save: Bool) {
        self.question = question; self.answer = answer; self.save = save
    }
}

/// The per-recipient decision of DESIGN.md, in order; the first step that applies wins:
///
/// 1. TLS-only: enabled for the sender, the recipient's domain has a qualifying TLS
///    verdict, the recipient is not excluded, the sender did not ask for encryption.
/// 2. Address-book data (PGP key, S/MIME certificate, escrow question) in the books
///    searched in order: the preferred book, else the subscribed books, else the default.
/// 3. Escrow with login, when login mode is on for the sender.
/// 4. Escrow with login, when the recipient already has an escrow account.
/// 5. Escrow with the default question of the user, domain or account.
/// 6. Escrow with a question asked of the sender at the terminal.
///
/// Otherwise the fallback: insecure or bounce (always bounce when the sender asked for
/// encryption: a sender who wrote +encrypt+ never gets plaintext).
public struct Decider {
    public let settings: EffectiveSettings
    public let books: BookShelf
    public let escrowAccounts: Set<String>
    public let tls: any TLSCapabilityProvider
    public let prompt: (any SenderPrompt)?
    public let pending: PendingAnswers?

    public init(settings: EffectiveSettings, books: BookShelf, escrowAccounts: Set<String>,
                tls: any TLSCapabilityProvider, prompt: (any SenderPrompt)?, pending: PendingAnswers?) {
        self.settings = settings
        self.books = books
        self.escrowAccounts = escrowAccounts
        self.tls = tls
        self.prompt = prompt
        self.pending = pending
    }

    /// The books searched for address-book data, in order, and why that order.
    public func bookSearchOrder() -> (names: [String], rule: String) {
        if let p = settings.preferredBook { return ([p], "preferred book") }
        if !settings.subscribedBooks.isEmpty { return (settings.subscribedBooks, "subscribed books") }
        if let d = books.defaultBook { return ([d], "default book") }
        return ([], "no address book configured")
    }

    public func decide(_ r: EmailAddress, intent: MessageIntent, isBcc: Bool = false) throws -> RecipientDecision {
        func result(_ m: DeliveryMethod, _ step: Int, _ why: String, _ p: [(key: Envelope.RoutingKey, value: String)] = []) -> RecipientDecision {
            RecipientDecision(recipient: r, method: m, reason: why, step: step, parameters: p, isBcc: isBcc)
        }

        // The organisation's own domains: no method decision at all (DESIGN: internal
        // mail is not filtered), whatever the sender asked for.
        if let own = internalDomain(r) {
            return result(.internal, 0, "\(own) is an internal domain (internal_domains); delivered as the MTA would")
        }

        if let optOut = intent.insecureOptOut {
            return result(.insecure, 0, "the sender opted out of protection (\(optOut)) and the policy allows it")
        }

        // 1. TLS-only
        var tlsNote: String
        if !settings.tlsOnly {
            tlsNote = "TLS-only is off for this sender"
        } else if let how = intent.forceEncryption {
            tlsNote = "the sender asked for encryption (\(how))"
        } else if let excluded = tlsExclusion(r) {
            tlsNote = "TLS-only is excluded for \(excluded)"
        } else if let f = tls.finding(for: r.asciiDomain) {
            let sts = f.mtaSTS.map { " (\($0))" } ?? ""
            if f.verdict.satisfies(settings.tlsMinimumVerdict) {
                return result(.tls, 1, "\(r.asciiDomain) has TLS verdict \(f.verdict.rawValue) (\(f.source)), TLS-only is on for this sender\(sts)")
            }
            tlsNote = "\(r.asciiDomain) has TLS verdict \(f.verdict.rawValue) (\(f.source)), below \(settings.tlsMinimumVerdict.rawValue)\(sts)"
        } else {
            tlsNote = "no TLS verdict for \(r.asciiDomain) in tls_static or the TLS cache"
        }

        // 2. Address books
        let order = bookSearchOrder()
        for name in order.names {
            guard let book = try books.book(named: name), let c = book.contact(for: r.addrSpec.lowercased()) ?? book.contact(for: r.key),
                  c.hasEncryptionData || c.pinnedPGPFingerprint != nil else { continue }
            let origin = "book \(name) (\(order.rule))"
            // X-SL-PGP-FINGERPRINT pins the key (which may live in the keyring rather
            // than in the card); otherwise the card's first key is the one.
            let pgp = c.pinnedPGPFingerprint ?? c.pgpKeys.first?.fingerprint
            let cert = c.smimeCertificates.first
            let usePGP: Bool? = switch (pgp, cert) {
                case (.some, .some): settings.pkiPreference == .pgp
                case (.some, .none): true
                case (.none, .some): false
                case (.none, .none): nil
            }
            if let usePGP {
                let both = pgp != nil && cert != nil ? ", preferred over \(usePGP ? "S/MIME" : "PGP") by pki_preference" : ""
                if usePGP, let pgp {
                    return result(.pgp, 2, "PGP key \(pgp) in \(origin)\(both); \(tlsNote)",
                                  [(.pgp, pgp), (.book, name)])
                } else if let cert {
                    var p: [(key: Envelope.RoutingKey, value: String)] = [(.smime, cert.sha256Fingerprint), (.book, name)]
                    // Only what the card says; sl-encrypt-smime applies smime_cipher otherwise.
                    if let gcm = c.smimeReadsGCM { p.append((.gcm, gcm ? "yes" : "no")) }
                    return result(.smime, 2, "S/MIME certificate \(cert.sha256Fingerprint.prefix(16))… in \(origin)\(both); \(tlsNote)", p)
                }
            }
            if c.escrow != nil {
                return result(.escrow, 2, "escrow question in \(origin); \(tlsNote)",
                              Self.question(.book(name)))
            }
        }
        let bookNote = (order.names.isEmpty ? "no address book" : "nothing in \(order.rule) \(order.names.joined(separator: ", "))")
            + "; \(tlsNote)"

        // 3 and 4. Escrow with login
        if settings.escrowLogin {
            return result(.escrow, 3, "escrow login mode is on for this sender; \(bookNote)", [(.escrow, Envelope.EscrowMode.login.rawValue)])
        }
        if escrowAccounts.contains(r.key) {
            return result(.escrow, 4, "the recipient has an escrow login account; \(bookNote)", [(.escrow, Envelope.EscrowMode.login.rawValue)])
        }

        // 5. Default question and answer, most specific level
        if let d = settings.escrowDefault {
            return result(.escrow, 5, "default escrow question of the \(d.level.rawValue) level; \(bookNote)",
                          Self.question(.defaultQuestion(level: d.level.rawValue)))
        }

        // 6. Ask the sender
        // Only ask when the answer can be kept somewhere: a book or the state directory.
        var unkept = ""
        if let prompt, books.canSave(preferring: settings.preferredBook) || pending != nil,
           let asked = try prompt.askEscrowQuestion(recipient: r.addrSpec) {
            if asked.save, let saved = try books.save(question: asked, for: r, preferring: settings.preferredBook) {
                return result(.escrow, 6, "escrow question asked of the sender, saved to book \(saved)",
                              Self.question(.book(saved)))
            }
            if let pending {
                let token = try pending.store(recipient: r.key, question: asked.question, answer: asked.answer)
                return result(.escrow, 6, "escrow question asked of the sender (not saved to a book)",
                              Self.question(.pending(token: token)))
            }
            unkept = "; the sender's answer could not be kept (no state directory)"
        }

        // Fallback
        let noSecure = "no secure method: \(bookNote); no escrow login or default question\(unkept)"
        if intent.forceEncryption != nil {
            return result(.bounce, 7, "\(noSecure); the sender asked for encryption, so it is not sent insecurely")
        }
        switch settings.fallback {
        case .insecure: return result(.insecure, 7, "\(noSecure); fallback is insecure")
        case .bounce: return result(.bounce, 7, "\(noSecure); fallback is bounce")
        }
    }

    /// The routing of an escrow recipient who answers a question from `source`.
    static func question(_ source: Envelope.AnswerSource) -> [(key: Envelope.RoutingKey, value: String)] {
        [(.escrow, Envelope.EscrowMode.question.rawValue), (.qa, source.text)]
    }

    /// The `internal_domains` entry that matches `r`'s domain (`.parent` for subdomains).
    func internalDomain(_ r: EmailAddress) -> String? {
        Self.matchingDomain(r, in: settings.internalDomains)
    }

    static func matchingDomain(_ r: EmailAddress, in domains: [String]) -> String? {
        for d in domains {
            if d.hasPrefix(".") {
                if r.asciiDomain.hasSuffix(d) { return d }
            } else if d == r.asciiDomain || d == r.domain.lowercased() {
                return d
            }
        }
        return nil
    }

    /// The `tls_exclude` entry that matches `r`: the address, its domain, or a parent
    /// domain written with a leading dot (`.example.org`), as in Postfix tables.
    func tlsExclusion(_ r: EmailAddress) -> String? {
        if let e = settings.tlsExclude.first(where: { $0.contains("@") && ($0 == r.key || $0 == r.addrSpec.lowercased()) }) {
            return e
        }
        return Self.matchingDomain(r, in: settings.tlsExclude.filter { !$0.contains("@") })
    }
}
