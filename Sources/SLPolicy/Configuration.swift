import Foundation
import SLMessage

/// The policy configuration, sl.conf(5). A small INI dialect admins already read:
/// `key = value` lines, `#` comments, and sections that say whose settings follow:
///
///     # global settings first
///     audit_log = /var/log/sl/audit.jsonl
///     # an organisation and its domains
///     [account clinic]
///     domains = clinic.example
///     [domain clinic.example]
///     [user dr.smith@clinic.example]
///
/// `#` starts a comment only at the beginning of a line: values (escrow answers,
/// triggers) may contain `#`.
///
/// Sender settings may appear at every level and the most specific level wins
/// (user, then domain, then account, then global); installation settings (paths,
/// books) only at the top.
public struct Configuration: Sendable {
    public var installation = InstallationSettings()
    /// Global sender settings (the top of the file).
    public var global = SenderSettings()
    public var accounts: [String: Account] = [:]
    public var domains: [String: SenderSettings] = [:]
    public var users: [String: SenderSettings] = [:]
    /// Where the configuration came from, for messages.
    public var source: String = "(built-in defaults)"

    public struct Account: Sendable {
        public var name: String
        public var domains: [String] = []
        public var settings = SenderSettings()
    }

    public init() {}
}

/// Settings of the installation: where things are. Only at the top of the file.
/// Grouped by the tools that read them; what several tools read stays here.
public struct InstallationSettings: Sendable {
    public init() {}
    /// `audit_log`; nil: the default, `effectiveAuditLog`.
    public var auditLog: AuditDestination?
    /// Address books by name, in the order they were defined.
    public var books: [(name: String, path: String)] = []
    public var defaultBook: String?
    /// A file listing addresses that already have escrow login accounts: sl-classify
    /// reads it to decide, the escrow tools do not.
    public var escrowAccounts: String?
    /// Directory for pending escrow answers the sender chose not to save. Unset:
    /// $XDG_STATE_HOME/sl, else ~/.local/state/sl (see `effectiveStateDirectory`).
    public var stateDirectory: String?
    /// Whether step 6 of the decision may ask the sender at a terminal.
    public var askSender = true
    /// Host name used in delivery reports (Reporting-MTA, MAILER-DAEMON@host).
    public var hostname: String?

    public var delivery = Delivery()
    public var transport = Transport()
    public var escrow = Escrow()
    public var smime = SMIME()
    public var pgp = PGP()
    public var portal = Portal()

    /// sl-deliver's queue, relay and reroute.
    public struct Delivery: Sendable {
        public init() {}
        /// sl-deliver's queue (default: the state directory's queue/).
        public var queueDirectory: String?
        /// Seconds a message may stay queued before it bounces (default 5 days).
        public var queueLifetime: Double?
        /// Submission relay `HOST[:PORT]` for sl-deliver instead of MX delivery.
        public var relay: String?
        /// Implicit TLS (465) rather than STARTTLS to the relay; nil: by port.
        public var relayImplicitTLS: Bool?
        /// File with the relay user name and password (mode 0600).
        public var relayCredentials: String?
        /// Shell command that takes a TLS-only message back for a new decision.
        public var rerouteCommand: String?
        /// Days sl-deliver remembers what it delivered (Message-ID and recipient),
        /// so a rerun or a queue pass after a kill sends nothing twice; 0: off.
        public var recordDays: Double = 7
        /// Hours after which a sender is told once that a message is still queued
        /// (Postfix's delay_warning_time); 0: never.
        public var delayWarningHours: Double = 4
    }

    /// How MX hosts are found and reached, and what is known of their TLS: read by
    /// sl-tls-probe, sl-classify's live probe and sl-deliver.
    public struct Transport: Sendable {
        public init() {}
        /// `HOST[:PORT]` of the DNS server for MX and address lookups (default: resolv.conf).
        public var dnsServer: String?
        /// `IPV4[:PORT]` of a validating resolver whose AD bit is trusted; it then
        /// answers all mail-routing lookups, with DNSSEC, and makes DANE possible.
        public var dnssecResolver: String?
        /// A transport(5)-style routing table overriding MX hosts per domain.
        public var transportMap: String?
        /// The SMTP port of MX hosts (25).
        public var smtpPort: UInt16 = 25
        /// The HTTPS port of MTA-STS policy hosts, mta-sts.DOMAIN (443; for tests).
        public var mtaSTSPort: UInt16 = 443
        /// PEM trust anchors for SMTP server certificates (default: the system CA store).
        public var tlsCAFile: String?
        /// Whether sl-classify probes a domain missing from the cache.
        public var tlsProbe = true
        /// Seconds sl-classify's live probe may take per domain.
        public var tlsProbeTimeout: Double = 10
        /// Where probe verdicts are shared: a file path (resolved against sl.conf's
        /// directory) or a PostgreSQL URI (postgresql://…); see `TLSCache.store(at:)`.
        public var tlsCache: String?
        /// Seconds a probe result stays in the cache (unreachable: at most 10 minutes).
        public var tlsCacheTTL: Double = 86_400
        /// Static TLS verdicts by domain (`tls_static = example.org=verified, ...`).
        public var tlsStatic: [String: TLSVerdict] = [:]
        /// Whether sl-deliver notes each session's TLS for RFC 8460 reports.
        public var tlsReporting = false
        /// The session log those notes go to (default: the state directory's tls-sessions.jsonl).
        public var tlsReportLog: String?
        /// RFC 8460 organization-name and contact-info (the reports' From:).
        public var tlsReportOrganization: String?
        public var tlsReportContact: String?
    }

    /// sl-escrow-pack's and sl-escrow's store, sealing and notices.
    public struct Escrow: Sendable {
        public init() {}
        /// The store directory (default: the state directory's escrow/).
        public var store: String?
        /// A file (mode 0600) holding the server-side pepper, 32 octets or more.
        public var pepperFile: String?
        /// The portal address notices link to (`URL/ID/N#SECRET`).
        public var url: String?
        /// Days a sealed message stays readable, and the most a message's own
        /// `Expires:` field may ask for.
        public var expiryDays: Double = 30
        public var expiryMaxDays: Double = 90
        /// Wrong answers or passwords before a recipient is locked out.
        public var maxAttempts = 5
        /// Argon2id passes and memory (MiB); never below OWASP's minimum.
        public var kdfPasses: UInt64 = 3
        public var kdfMemoryMiB = 64
        /// Also wrap each message for the sender's own account (message center).
        public var messageCenter = false
        /// Notices: From field, Subject template, text and HTML template files.
        public var noticeFrom: String?
        public var noticeSubject: String?
        public var noticeText: String?
        public var noticeHTML: String?
    }

    /// sl-portal: where it listens, and how: HTTPS with its own certificate, or plain
    /// HTTP on a loopback address behind a reverse proxy that terminates TLS.
    public struct Portal: Sendable {
        public init() {}
        /// The address, a host name or IP address (IPv6 in brackets), and the port.
        public var listenHost = "127.0.0.1"
        public var listenPort = 8080
        /// PEM files: the certificate (the chain may follow it) and its private key.
        public var tlsCertificate: String?
        public var tlsKey: String?
        /// Plain HTTP on loopback behind a TLS-terminating proxy, whose last
        /// X-Forwarded-For entry names the client.
        public var behindProxy = false
        /// Minutes a session lasts after a right answer or password.
        public var sessionMinutes = 15
        /// Answers, passwords and reset requests one client address may try per
        /// minute, on top of each message's own lockout.
        public var attemptsPerMinute = 10
        /// The command replies and SecureSend messages are handed to, split on
        /// white space (no shell); `-f SENDER -- RECIPIENT` is appended. Default:
        /// sl-send beside sl-portal with this configuration.
        public var submitCommand: [String]?
        /// Replies one recipient may send per message.
        public var maxReplies = 5
        /// The largest reply or SecureSend form, attachments included, in MiB.
        public var uploadLimitMiB = 10
        /// The public SecureSend form (escrow_url/send).
        public var secureSend = false
        /// Whom the form may write to: addresses, or domains (`@example.org` or
        /// `example.org`).
        public var secureSendRecipients: [String] = []
        /// Messages one sender address may send through the form in a day.
        public var secureSendDaily = 20
        /// Hours an unverified SecureSend message waits for its sender's link.
        public var secureSendExpiryHours: Double = 24
    }

    /// sl-encrypt-smime's certificate checks and cipher.
    public struct SMIME: Sendable {
        public init() {}
        /// Extra trust anchors for S/MIME certificates (PEM or DER files).
        public var anchors: [String] = []
        /// Whether the system CA bundle is trusted for S/MIME certificates.
        public var systemCAs = true
        /// The S/MIME content cipher for recipients whose contact does not say
        /// (`X-SL-SMIME-GCM`). CBC, because the usual clients cannot read GCM yet.
        public var cipher = SMIMECipher.aes256CBC
    }

    /// sl-encrypt-pgp's GnuPG home (see `effectivePGPHome`).
    public struct PGP: Sendable {
        public init() {}
        public var homeDirectory: String?
    }

    // The defaults below fall back on the state directory, so they live here, where
    // both their own group and the shared state directory are in sight.

    public var effectiveStateDirectory: String? {
        if let stateDirectory { return stateDirectory }
        if let x = environmentValue("XDG_STATE_HOME"), x.hasPrefix("/") { return x + "/sl" }
        if let h = environmentValue("HOME"), h.hasPrefix("/") { return h + "/.local/state/sl" }
        return nil
    }

    /// `pgp_homedir`, else $GNUPGHOME, else ~/.gnupg; where there is no HOME (Postfix
    /// pipe(8), cron) the state directory's gnupg/. Nil: none can be named.
    public var effectivePGPHome: String? {
        if let homeDirectory = pgp.homeDirectory { return homeDirectory }
        if let g = environmentValue("GNUPGHOME"), !g.isEmpty { return g }
        if let h = environmentValue("HOME"), h.hasPrefix("/") { return h + "/.gnupg" }
        return stateDirectory.map { $0 + "/gnupg" }
    }

    /// The escrow store: `escrow_store` (a directory or a postgresql:// URI), else
    /// the state directory's escrow/.
    public var effectiveEscrowStore: String? {
        escrow.store ?? effectiveStateDirectory.map { $0 + "/escrow" }
    }
    /// Where audit records go: `audit_log`, else the state directory's audit.jsonl
    /// (on by default, as an MTA logs every delivery), else nowhere.
    public var effectiveAuditLog: AuditDestination {
        auditLog ?? effectiveStateDirectory.map { .file($0 + "/audit.jsonl") } ?? .off
    }
    /// The RFC 8460 session log: `tls_report_log`, else the state directory's tls-sessions.jsonl.
    public var effectiveTLSReportLog: String? {
        transport.tlsReportLog ?? effectiveStateDirectory.map { $0 + "/tls-sessions.jsonl" }
    }
    /// Where sl-classify leaves answers a sender gave without saving them.
    public var pendingAnswersDirectory: String? { effectiveStateDirectory.map { $0 + "/pending" } }
}

/// Settings that depend on the sender; every field is optional so levels can be
/// merged, the most specific value winning.
public struct SenderSettings: Sendable {
    public var tlsOnly: Bool?
    public var tlsExclude: [String]?
    public var tlsMinimumVerdict: TLSVerdict?
    public var escrowLogin: Bool?
    public var escrowQuestion: String?
    public var escrowAnswer: String?
    public var fallback: FallbackAction?
    public var encryptTrigger: String?
    public var encryptHeader: String?
    public var insecureTrigger: String?
    public var allowInsecureTrigger: Bool?
    public var stripTriggers: Bool?
    public var pkiPreference: PKIPreference?
    public var preferredBook: String?
    public var subscribedBooks: [String]?
    public var pgpSign: Bool?
    public var pgpEncryptToSelf: Bool?
    public var protectedSubject: String?
    public var smimeSign: Bool?
    public var smimeEncryptToSelf: Bool?
    public var smimeCertificate: String?
    public var smimeKey: String?
    /// The organisation's own domains: mail to them is not filtered (nil: the
    /// sender's account's `domains`; empty: none).
    public var internalDomains: [String]?
    /// open_tracking: an image in the HTML text of TLS and PKI copies.
    public var openTracking: Bool?

    public init() {}

    /// `self` with every unset value taken from `base`.
    func over(_ base: SenderSettings) -> SenderSettings {
        var r = self
        r.tlsOnly = tlsOnly ?? base.tlsOnly
        r.tlsExclude = tlsExclude ?? base.tlsExclude
        r.tlsMinimumVerdict = tlsMinimumVerdict ?? base.tlsMinimumVerdict
        r.escrowLogin = escrowLogin ?? base.escrowLogin
        // question and answer travel together: a level that sets one sets the pair
        if escrowQuestion == nil && escrowAnswer == nil {
            r.escrowQuestion = base.escrowQuestion
            r.escrowAnswer = base.escrowAnswer
        }
        r.fallback = fallback ?? base.fallback
        r.encryptTrigger = encryptTrigger ?? base.encryptTrigger
        r.encryptHeader = encryptHeader ?? base.encryptHeader
        r.insecureTrigger = insecureTrigger ?? base.insecureTrigger
        r.allowInsecureTrigger = allowInsecureTrigger ?? base.allowInsecureTrigger
        r.stripTriggers = stripTriggers ?? base.stripTriggers
        r.pkiPreference = pkiPreference ?? base.pkiPreference
        r.preferredBook = preferredBook ?? base.preferredBook
        r.subscribedBooks = subscribedBooks ?? base.subscribedBooks
        r.pgpSign = pgpSign ?? base.pgpSign
        r.pgpEncryptToSelf = pgpEncryptToSelf ?? base.pgpEncryptToSelf
        r.protectedSubject = protectedSubject ?? base.protectedSubject
        r.smimeSign = smimeSign ?? base.smimeSign
        r.smimeEncryptToSelf = smimeEncryptToSelf ?? base.smimeEncryptToSelf
        // certificate and key travel together, like the escrow question and answer
        if smimeCertificate == nil && smimeKey == nil {
            r.smimeCertificate = base.smimeCertificate
            r.smimeKey = base.smimeKey
        }
        r.internalDomains = internalDomains ?? base.internalDomains
        r.openTracking = openTracking ?? base.openTracking
        return r
    }
}

public enum PKIPreference: String, Sendable { case pgp, smime }

/// How S/MIME content is encrypted (`smime_cipher`), by its sl.conf name.
public enum SMIMECipher: String, Sendable {
    /// AES-256-CBC EnvelopedData: what S/MIME clients read, but without integrity
    /// protection of its own (EFAIL).
    case aes256CBC = "aes256-cbc"
    /// AES-256-GCM AuthEnvelopedData (RFC 5083, 5084): authenticated, but few
    /// clients read it.
    case aes256GCM = "aes256-gcm"
}

/// Which level supplied a value: shown in `--explain` reasons and audit records.
public enum SettingsLevel: String, Sendable { case user, domain, account, global }

/// The settings in force for one sender, every value resolved.
public struct EffectiveSettings: Sendable {
    public var account: String?
    public var tlsOnly: Bool
    public var tlsExclude: [String]
    public var tlsMinimumVerdict: TLSVerdict
    public var escrowLogin: Bool
    /// The default question and answer and the level that set them.
    public var escrowDefault: (question: String, answer: String, level: SettingsLevel)?
    public var fallback: FallbackAction
    public var encryptTrigger: String
    public var encryptHeader: String
    public var insecureTrigger: String?
    public var allowInsecureTrigger: Bool
    public var stripTriggers: Bool
    public var pkiPreference: PKIPreference
    public var preferredBook: String?
    public var subscribedBooks: [String]
    /// Sign encrypted messages with the sender's key.
    public var pgpSign: Bool
    /// Also encrypt to the sender's own key, so the sent copy can be read.
    public var pgpEncryptToSelf: Bool
    /// The Subject shown outside an encrypted message (RFC 9788).
    public var protectedSubject: String
    /// S/MIME: sign (then encrypt) with the sender's certificate and key.
    public var smimeSign: Bool
    /// S/MIME: also encrypt to the sender's own certificate.
    public var smimeEncryptToSelf: Bool
    /// The sender's S/MIME certificate and unencrypted PEM key files.
    public var smimeCertificate: String?
    public var smimeKey: String?
    /// Domains (lowercase ASCII; `.parent` for subdomains) delivered as the MTA would,
    /// without a method decision: the organisation's own.
    public var internalDomains: [String]
    /// Put an open-tracking image into the HTML text of copies sent by TLS, PGP
    /// or S/MIME (sl-classify; see Tracking.swift in SLEscrow).
    public var openTracking: Bool
}

extension Configuration {
    /// The account a sender belongs to: the one listing the sender's domain.
    public func account(forSenderDomain domain: String) -> Account? {
        let d = domain.lowercased()
        return accounts.values.sorted { $0.name < $1.name }.first { $0.domains.contains(d) }
    }

    /// The settings for an envelope sender address ("" for the null sender).
    public func settings(forSender sender: String, account: String?) throws -> EffectiveSettings {
        let domain = sender.split(separator: "@").last.map(String.init) ?? ""
        return try settings(forSender: sender, senderDomain: domain, account: account)
    }

    /// Resolves the settings for `sender` (lowercased addr-spec key), most specific first.
    public func settings(forSender sender: String, senderDomain: String, account explicitAccount: String? = nil) throws -> EffectiveSettings {
        let account: Account?
        if let name = explicitAccount {
            guard let a = accounts[name] else {
                throw ConfigurationError(source, 0, "account \"\(name)\" is not defined; add an [account \(name)] section")
            }
            account = a
        } else {
            account = self.account(forSenderDomain: senderDomain)
        }
        let levels: [(SettingsLevel, SenderSettings?)] = [
            (.user, users[sender.lowercased()]),
            (.domain, domains[senderDomain.lowercased()]),
            (.account, account?.settings),
            (.global, global),
        ]
        var merged = SenderSettings()
        var escrowDefault: (String, String, SettingsLevel)?
        for (level, s) in levels {
            guard let s else { continue }
            merged = merged.over(s)
            if escrowDefault == nil, let q = s.escrowQuestion, let a = s.escrowAnswer { escrowDefault = (q, a, level) }
        }
        return EffectiveSettings(
            account: account?.name,
            tlsOnly: merged.tlsOnly ?? false,
            tlsExclude: (merged.tlsExclude ?? []).map { $0.lowercased() },
            tlsMinimumVerdict: merged.tlsMinimumVerdict ?? .verified,
            escrowLogin: merged.escrowLogin ?? false,
            escrowDefault: escrowDefault,
            fallback: merged.fallback ?? .bounce,
            encryptTrigger: merged.encryptTrigger ?? "+encrypt+",
            encryptHeader: merged.encryptHeader ?? "X-Encrypt",
            insecureTrigger: merged.insecureTrigger.flatMap { $0.isEmpty ? nil : $0 },
            allowInsecureTrigger: merged.allowInsecureTrigger ?? false,
            stripTriggers: merged.stripTriggers ?? true,
            pkiPreference: merged.pkiPreference ?? .pgp,
            preferredBook: merged.preferredBook.flatMap { $0.isEmpty ? nil : $0 },
            subscribedBooks: merged.subscribedBooks ?? [],
            pgpSign: merged.pgpSign ?? false,
            pgpEncryptToSelf: merged.pgpEncryptToSelf ?? false,
            protectedSubject: merged.protectedSubject ?? "[...]",
            smimeSign: merged.smimeSign ?? false,
            smimeEncryptToSelf: merged.smimeEncryptToSelf ?? false,
            smimeCertificate: merged.smimeCertificate,
            smimeKey: merged.smimeKey,
            internalDomains: (merged.internalDomains ?? account?.domains ?? []).map { $0.lowercased() },
            openTracking: merged.openTracking ?? false)
    }
}

/// A configuration problem: file, line and what to change. Exit 78 (EX_CONFIG).
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let line: Int
    public let message: String
    public init(_ file: String, _ line: Int, _ message: String) {
        self.file = file; self.line = line; self.message = message
    }
    public var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
}
