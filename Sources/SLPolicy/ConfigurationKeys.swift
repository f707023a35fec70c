import Foundation
import SLMessage
import SLPostgres

/// What an sl.conf key sets, which also says where it may stand.
enum Setting: Sendable {
    /// Where things are: before the first section only.
    case installation(@Sendable (inout InstallationSettings, SettingValue) throws -> Void)
    /// An installation setting that names one of several (`book NAME = PATH`).
    case namedInstallation(@Sendable (inout InstallationSettings, _ name: String, SettingValue) throws -> Void)
    /// Whose policy: at every level, the most specific one winning.
    case sender(@Sendable (inout SenderSettings, SettingValue) throws -> Void)
    /// An account's own: in its [account NAME] section only.
    case account(@Sendable (inout Configuration.Account, SettingValue) throws -> Void)
}

extension Configuration {
    /// Every sl.conf key, once, in the order of sl.conf(5). The parser knows no other
    /// key, and each key here comes with the code that applies it, so a key cannot be
    /// accepted and then ignored. ConfigurationKeyTests holds this table and the
    /// manual page to each other.
    static let settings: [String: Setting] = [
        // INSTALLATION SETTINGS
        "audit_log": .installation { i, v in
            switch v.text.lowercased() {
            case "off", "no", "none": i.auditLog = .off
            case "syslog": i.auditLog = .syslog
            default: i.auditLog = .file(v.path)
            }
        },
        "tls_cache": .installation { i, v in
            // A database URI is not a path beside sl.conf.
            guard PostgresTLSCache.isLocation(v.text) else { i.transport.tlsCache = v.path; return }
            guard !PostgresURI.containsPassword(v.text) else {
                throw v.error("tls_cache: put the database password in ~/.pgpass, PGPASSFILE or PGPASSWORD, not in the URI")
            }
            i.transport.tlsCache = v.text
        },
        "tls_static": .installation { i, v in
            for item in v.list {
                let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2, let verdict = TLSVerdict(rawValue: kv[1].lowercased()) else {
                    throw v.error("tls_static entries are DOMAIN=VERDICT (dane, verified, encrypted, none, unreachable)")
                }
                i.transport.tlsStatic[kv[0].lowercased()] = verdict
            }
        },
        "tls_cache_ttl": .installation { i, v in i.transport.tlsCacheTTL = try v.seconds() },
        "tls_reporting": .installation { i, v in i.transport.tlsReporting = try v.boolean() },
        "tls_report_log": .installation { i, v in i.transport.tlsReportLog = v.path },
        "tls_report_organization": .installation { i, v in i.transport.tlsReportOrganization = v.text },
        "tls_report_contact": .installation { i, v in
            guard (try? EmailAddress(parsing: v.text)) != nil else { throw v.error("tls_report_contact must be an address (the reports' From:)") }
            i.transport.tlsReportContact = v.text
        },
        "tls_probe": .installation { i, v in i.transport.tlsProbe = try v.boolean() },
        "tls_probe_timeout": .installation { i, v in i.transport.tlsProbeTimeout = try v.seconds() },
        "dns_server": .installation { i, v in i.transport.dnsServer = v.text },
        "dnssec_resolver": .installation { i, v in i.transport.dnssecResolver = v.text },
        "transport_map": .installation { i, v in i.transport.transportMap = v.path },
        "smtp_port": .installation { i, v in
            i.transport.smtpPort = try v.number("smtp_port must be a port number (1-65535)") { $0 > 0 }
        },
        "tls_ca_file": .installation { i, v in i.transport.tlsCAFile = v.path },
        "mta_sts_port": .installation { i, v in
            i.transport.mtaSTSPort = try v.number("mta_sts_port must be a port number (1-65535)") { $0 > 0 }
        },
        "book": .namedInstallation { i, name, v in
            guard !i.books.contains(where: { $0.name == name }) else { throw v.error("book \(name) is defined twice") }
            i.books.append((name, v.path))
        },
        "default_book": .installation { i, v in i.defaultBook = v.text.lowercased() },
        "escrow_accounts": .installation { i, v in i.escrowAccounts = v.path },
        "state_directory": .installation { i, v in i.stateDirectory = v.path },
        "ask_sender": .installation { i, v in i.askSender = try v.boolean() },
        "hostname": .installation { i, v in i.hostname = v.text },
        "pgp_homedir": .installation { i, v in i.pgp.homeDirectory = v.path },
        "smime_anchors": .installation { i, v in i.smime.anchors = v.list.map(v.resolved) },
        "smime_system_cas": .installation { i, v in i.smime.systemCAs = try v.boolean() },
        "smime_cipher": .installation { i, v in i.smime.cipher = try v.choice("smime_cipher must be aes256-cbc or aes256-gcm") },
        "queue_directory": .installation { i, v in i.delivery.queueDirectory = v.path },
        "queue_lifetime": .installation { i, v in i.delivery.queueLifetime = try v.days(upTo: 365) * 86_400 },
        "relay": .installation { i, v in i.delivery.relay = v.text },
        "relay_tls": .installation { i, v in
            switch v.text.lowercased() {
            case "implicit": i.delivery.relayImplicitTLS = true
            case "starttls": i.delivery.relayImplicitTLS = false
            default: throw v.error("relay_tls must be implicit or starttls")
            }
        },
        "relay_credentials": .installation { i, v in i.delivery.relayCredentials = v.path },
        "reroute_command": .installation { i, v in i.delivery.rerouteCommand = v.text },
        "delay_warning_time": .installation { i, v in
            i.delivery.delayWarningHours = try v.number("delay_warning_time must be hours from 0 (never) to 720") { (0.0...720.0).contains($0) }
        },
        "delivery_record": .installation { i, v in
            i.delivery.recordDays = try v.number("delivery_record must be days from 0 (off) to 365") { (0.0...365.0).contains($0) }
        },
        "escrow_store": .installation { i, v in
            // A database URI is not a path beside sl.conf.
            guard PostgresURI.isURI(v.text) else { i.escrow.store = v.path; return }
            guard !PostgresURI.containsPassword(v.text) else {
                throw v.error("escrow_store: put the database password in ~/.pgpass, PGPASSFILE or PGPASSWORD, not in the URI")
            }
            i.escrow.store = v.text
        },
        "escrow_pepper_file": .installation { i, v in i.escrow.pepperFile = v.path },
        "escrow_url": .installation { i, v in
            let url = v.text
            guard url.hasPrefix("https://") || url.hasPrefix("http://"), !url.contains("#"),
                  !url.contains(where: { $0 == " " || $0.isNewline }) else {
                throw v.error("escrow_url must be an http(s) address without a fragment")
            }
            i.escrow.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        },
        "escrow_expiry": .installation { i, v in i.escrow.expiryDays = try v.days(upTo: 3650) },
        "escrow_expiry_max": .installation { i, v in i.escrow.expiryMaxDays = try v.days(upTo: 3650) },
        "escrow_max_attempts": .installation { i, v in
            i.escrow.maxAttempts = try v.number("escrow_max_attempts must be a number from 1 to 100") { (1...100).contains($0) }
        },
        "escrow_kdf_passes": .installation { i, v in
            i.escrow.kdfPasses = try v.number("escrow_kdf_passes must be from 2 (OWASP's minimum) to 100") { (2...100).contains($0) }
        },
        "escrow_kdf_memory": .installation { i, v in
            i.escrow.kdfMemoryMiB = try v.number("escrow_kdf_memory must be MiB from 19 (OWASP's minimum) to 4096") { (19...4096).contains($0) }
        },
        "escrow_message_center": .installation { i, v in i.escrow.messageCenter = try v.boolean() },
        "escrow_notice_from": .installation { i, v in i.escrow.noticeFrom = v.text },
        "escrow_notice_subject": .installation { i, v in i.escrow.noticeSubject = v.text },
        "escrow_notice_text": .installation { i, v in i.escrow.noticeText = v.path },
        "escrow_notice_html": .installation { i, v in i.escrow.noticeHTML = v.path },
        "portal_listen": .installation { i, v in
            let text = v.text
            let problem = "portal_listen must be ADDRESS:PORT (an IPv6 address in brackets), port 0-65535"
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                  (0...65535).contains(port) else { throw v.error(problem) }
            var host = String(text[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "[" || $0 == "]" || $0 == "/" }) else { throw v.error(problem) }
            i.portal.listenHost = host
            i.portal.listenPort = port
        },
        "portal_tls_certificate": .installation { i, v in i.portal.tlsCertificate = v.path },
        "portal_tls_key": .installation { i, v in i.portal.tlsKey = v.path },
        "portal_behind_proxy": .installation { i, v in i.portal.behindProxy = try v.boolean() },
        "portal_session_minutes": .installation { i, v in
            i.portal.sessionMinutes = try v.number("portal_session_minutes must be minutes from 1 to 1440") { (1...1440).contains($0) }
        },
        "portal_submit_command": .installation { i, v in
            var argv = v.text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let first = argv.first else { throw v.error("portal_submit_command needs a command") }
            // A relative path is the configuration file's neighbour, as for every
            // path here; a bare name is looked up on PATH.
            if first.contains("/") { argv[0] = v.resolved(first) }
            i.portal.submitCommand = argv
        },
        "portal_max_replies": .installation { i, v in
            i.portal.maxReplies = try v.number("portal_max_replies must be a number from 0 to 1000") { (0...1000).contains($0) }
        },
        "portal_upload_limit": .installation { i, v in
            i.portal.uploadLimitMiB = try v.number("portal_upload_limit must be MiB from 1 to 100") { (1...100).contains($0) }
        },
        "portal_securesend": .installation { i, v in i.portal.secureSend = try v.boolean() },
        "portal_securesend_recipients": .installation { i, v in
            i.portal.secureSendRecipients = v.list.map { $0.lowercased() }
        },
        "portal_securesend_daily": .installation { i, v in
            i.portal.secureSendDaily = try v.number("portal_securesend_daily must be a number from 1 to 10000") { (1...10000).contains($0) }
        },
        "portal_securesend_expiry": .installation { i, v in
            i.portal.secureSendExpiryHours = try v.number("portal_securesend_expiry must be hours from 1 to 720") { (1.0...720.0).contains($0) }
        },
        "portal_rate_limit": .installation { i, v in
            i.portal.attemptsPerMinute = try v.number("portal_rate_limit must be attempts per minute from 1 to 10000") { (1...10000).contains($0) }
        },

        // SENDER SETTINGS
        "domains": .account { a, v in a.domains = v.list.map { $0.lowercased() } },
        "internal_domains": .sender { s, v in s.internalDomains = v.list.map { $0.lowercased() } },   // empty: none
        "tls_only": .sender { s, v in s.tlsOnly = try v.boolean() },
        "tls_exclude": .sender { s, v in s.tlsExclude = v.list },
        "tls_min_verdict": .sender { s, v in
            guard let verdict = TLSVerdict(rawValue: v.text.lowercased()), verdict.satisfies(.encrypted) else {
                throw v.error("tls_min_verdict must be dane, verified or encrypted")
            }
            s.tlsMinimumVerdict = verdict
        },
        "escrow_login": .sender { s, v in s.escrowLogin = try v.boolean() },
        "escrow_question": .sender { s, v in s.escrowQuestion = v.text },
        "escrow_answer": .sender { s, v in s.escrowAnswer = v.text },
        "fallback": .sender { s, v in s.fallback = try v.choice("fallback must be insecure or bounce") },
        "encrypt_trigger": .sender { s, v in s.encryptTrigger = v.text },
        "encrypt_header": .sender { s, v in
            guard !v.text.isEmpty, v.text.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }) else {
                throw v.error("encrypt_header must be a header field name")
            }
            guard !v.text.uppercased().hasPrefix(Envelope.fieldPrefix) else {
                throw v.error("encrypt_header cannot be an X-SL- field: those are removed on entry")
            }
            s.encryptHeader = v.text
        },
        "insecure_trigger": .sender { s, v in s.insecureTrigger = v.text },   // empty: none, overriding broader levels
        "allow_insecure_trigger": .sender { s, v in s.allowInsecureTrigger = try v.boolean() },
        "strip_triggers": .sender { s, v in s.stripTriggers = try v.boolean() },
        "pki_preference": .sender { s, v in s.pkiPreference = try v.choice("pki_preference must be pgp or smime") },
        "preferred_book": .sender { s, v in s.preferredBook = v.text.lowercased() },   // empty: none
        "subscribed_books": .sender { s, v in s.subscribedBooks = v.list.map { $0.lowercased() } },
        "pgp_sign": .sender { s, v in s.pgpSign = try v.boolean() },
        "pgp_encrypt_to_self": .sender { s, v in s.pgpEncryptToSelf = try v.boolean() },
        "protected_subject": .sender { s, v in
            guard !v.text.contains("\r"), !v.text.contains("\n") else { throw v.error("protected_subject must be one line") }
            s.protectedSubject = v.text
        },
        "smime_sign": .sender { s, v in s.smimeSign = try v.boolean() },
        "smime_encrypt_to_self": .sender { s, v in s.smimeEncryptToSelf = try v.boolean() },
        "smime_certificate": .sender { s, v in s.smimeCertificate = v.path },
        "smime_key": .sender { s, v in s.smimeKey = v.path },

        // OPEN TRACKING (a sender setting; sl.conf(5))
        "open_tracking": .sender { s, v in s.openTracking = try v.boolean() },
    ]
}

/// The value of one sl.conf line, and the readings the keys ask of it. Every
/// complaint names the file and line.
struct SettingValue {
    let key: String
    /// As written, white space around it removed.
    let text: String
    /// The configuration file's directory ("" for text not read from a file).
    let directory: String
    let source: String
    let line: Int

    func error(_ message: String) -> ConfigurationError { ConfigurationError(source, line, message) }

    /// A relative path is relative to the configuration file's directory, so a
    /// configuration and its books can move together.
    var path: String { resolved(text) }
    func resolved(_ p: String) -> String { p.hasPrefix("/") || directory.isEmpty ? p : directory + "/" + p }

    /// Lists are separated by commas and/or white space, as in Postfix.
    var list: [String] { text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }).map(String.init) }

    func boolean() throws -> Bool {
        switch text.lowercased() {
        case "yes", "true", "on", "1": return true
        case "no", "false", "off", "0": return false
        default: throw error("\(key) must be yes or no")
        }
    }

    /// One of an enumeration's sl.conf names, in any case.
    func choice<T: RawRepresentable>(_ message: String) throws -> T where T.RawValue == String {
        guard let t = T(rawValue: text.lowercased()) else { throw error(message) }
        return t
    }

    func number<N: LosslessStringConvertible>(_ message: String, where valid: (N) -> Bool) throws -> N {
        guard let n = N(text), valid(n) else { throw error(message) }
        return n
    }

    func days(upTo most: Double) throws -> Double {
        try number("\(key) must be a number of days (up to \(Int(most)))") { $0 > 0 && $0 <= most }
    }

    func seconds() throws -> Double {
        try number("\(key) must be a positive number of seconds") { $0 > 0 && $0 < 1e9 }
    }
}
