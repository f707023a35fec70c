import Foundation
import SLMessage

extension Configuration {
    /// Loads and parses a configuration file.
    public static func load(path: String) throws -> Configuration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(path, 0, "cannot read the configuration file (does it exist, and may this user read it?)")
        }
        guard let text = String(validating: Array(data), as: UTF8.self) else {
            throw ConfigurationError(path, 0, "the configuration file is not UTF-8")
        }
        var c = try parse(text, source: path)
        c.source = path
        let directory = (path as NSString).deletingLastPathComponent
        c.installation.resolvePaths(relativeTo: directory)
        c.global.resolvePaths(relativeTo: directory)
        for k in c.accounts.keys { c.accounts[k]!.settings.resolvePaths(relativeTo: directory) }
        for k in c.domains.keys { c.domains[k]!.resolvePaths(relativeTo: directory) }
        for k in c.users.keys { c.users[k]!.resolvePaths(relativeTo: directory) }
        return c
    }

    private enum Section {
        case global
        case account(String)
        case domain(String)
        case user(String)
    }

    /// Parses configuration text. Unknown keys, keys at the wrong level and bad values
    /// are errors with the line number: a typo must never silently weaken policy.
    public static func parse(_ text: String, source: String = "sl.conf") throws -> Configuration {
        var c = Configuration()
        c.source = source
        var section = Section.global
        for (n, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = n + 1
            func fail(_ m: String) -> ConfigurationError { ConfigurationError(source, lineNumber, m) }
            var line = Substring(rawLine)
            if line.last == "\r" { line = line.dropLast() }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            if trimmed.hasPrefix("[") {
                guard trimmed.hasSuffix("]") else { throw fail("section header must end with ]") }
                let inner = trimmed.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                let words = inner.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
                guard words.count == 2 else { throw fail("expected [account NAME], [domain DOMAIN] or [user ADDRESS]") }
                let name = words[1].lowercased()
                switch words[0].lowercased() {
                case "account":
                    if c.accounts[name] == nil { c.accounts[name] = Account(name: name) }
                    section = .account(name)
                case "domain":
                    if c.domains[name] == nil { c.domains[name] = SenderSettings() }
                    section = .domain(name)
                case "user":
                    guard name.contains("@") else { throw fail("[user \(name)] must name an address") }
                    if c.users[name] == nil { c.users[name] = SenderSettings() }
                    section = .user(name)
                default:
                    throw fail("unknown section kind \"\(words[0])\"; use account, domain or user")
                }
                continue
            }
            guard let eq = trimmed.firstIndex(of: "=") else { throw fail("expected key = value") }
            let keyPart = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
            let value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            let keyWords = keyPart.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard let key = keyWords.first?.lowercased() else { throw fail("missing key before =") }

            // Installation settings: top of the file only.
            if ["audit_log", "tls_cache", "tls_static", "book", "default_book", "escrow_accounts",
                "state_directory", "ask_sender", "hostname", "pgp_homedir", "smime_anchors", "smime_system_cas", "smime_cipher",
                "dns_server", "transport_map", "smtp_port", "tls_ca_file", "tls_probe", "tls_probe_timeout",
                "tls_cache_ttl", "queue_directory", "queue_lifetime", "relay", "relay_tls", "relay_credentials",
                "reroute_command", "escrow_store", "escrow_pepper_file", "escrow_url", "escrow_expiry",
                "escrow_expiry_max", "escrow_max_attempts", "escrow_kdf_passes", "escrow_kdf_memory",
                "escrow_message_center", "escrow_notice_from", "escrow_notice_subject", "escrow_notice_text",
                "escrow_notice_html"].contains(key) {
                guard case .global = section else { throw fail("\(key) is an installation setting; put it before the first section") }
                switch key {
                case "book":
                    guard keyWords.count == 2 else { throw fail("write book NAME = PATH") }
                    let name = keyWords[1].lowercased()
                    guard !c.installation.books.contains(where: { $0.name == name }) else { throw fail("book \(name) is defined twice") }
                    c.installation.books.append((name, value))
                case "audit_log": c.installation.auditLog = value
                case "tls_cache": c.installation.transport.tlsCache = value
                case "default_book": c.installation.defaultBook = value.lowercased()
                case "escrow_accounts": c.installation.escrowAccounts = value
                case "state_directory": c.installation.stateDirectory = value
                case "hostname": c.installation.hostname = value
                case "pgp_homedir": c.installation.pgp.homeDirectory = value
                case "smime_anchors": c.installation.smime.anchors = list(value)
                case "smime_system_cas": c.installation.smime.systemCAs = try boolean(value, key, fail)
                case "smime_cipher":
                    guard let cipher = SMIMECipher(rawValue: value.lowercased()) else {
                        throw fail("smime_cipher must be aes256-cbc or aes256-gcm")
                    }
                    c.installation.smime.cipher = cipher
                case "ask_sender": c.installation.askSender = try boolean(value, key, fail)
                case "dns_server": c.installation.transport.dnsServer = value
                case "queue_directory": c.installation.delivery.queueDirectory = value
                case "relay": c.installation.delivery.relay = value
                case "relay_credentials": c.installation.delivery.relayCredentials = value
                case "reroute_command": c.installation.delivery.rerouteCommand = value
                case "relay_tls":
                    switch value.lowercased() {
                    case "implicit": c.installation.delivery.relayImplicitTLS = true
                    case "starttls": c.installation.delivery.relayImplicitTLS = false
                    default: throw fail("relay_tls must be implicit or starttls")
                    }
                case "queue_lifetime":
                    guard let days = Double(value), days > 0, days <= 365 else { throw fail("queue_lifetime must be a number of days (up to 365)") }
                    c.installation.delivery.queueLifetime = days * 86_400
                case "escrow_store": c.installation.escrow.store = value
                case "escrow_pepper_file": c.installation.escrow.pepperFile = value
                case "escrow_url":
                    guard value.hasPrefix("https://") || value.hasPrefix("http://"), !value.contains("#"),
                          !value.contains(where: { $0 == " " || $0.isNewline }) else {
                        throw fail("escrow_url must be an http(s) address without a fragment")
                    }
                    c.installation.escrow.url = value.hasSuffix("/") ? String(value.dropLast()) : value
                case "escrow_expiry", "escrow_expiry_max":
                    guard let days = Double(value), days > 0, days <= 3650 else { throw fail("\(key) must be a number of days (up to 3650)") }
                    if key == "escrow_expiry" { c.installation.escrow.expiryDays = days } else { c.installation.escrow.expiryMaxDays = days }
                case "escrow_max_attempts":
                    guard let n = Int(value), n >= 1, n <= 100 else { throw fail("escrow_max_attempts must be a number from 1 to 100") }
                    c.installation.escrow.maxAttempts = n
                case "escrow_kdf_passes":
                    guard let n = UInt64(value), n >= 2, n <= 100 else { throw fail("escrow_kdf_passes must be from 2 (OWASP's minimum) to 100") }
                    c.installation.escrow.kdfPasses = n
                case "escrow_kdf_memory":
                    guard let n = Int(value), n >= 19, n <= 4096 else { throw fail("escrow_kdf_memory must be MiB from 19 (OWASP's minimum) to 4096") }
                    c.installation.escrow.kdfMemoryMiB = n
                case "escrow_message_center": c.installation.escrow.messageCenter = try boolean(value, key, fail)
                case "escrow_notice_from": c.installation.escrow.noticeFrom = value
                case "escrow_notice_subject": c.installation.escrow.noticeSubject = value
                case "escrow_notice_text": c.installation.escrow.noticeText = value
                case "escrow_notice_html": c.installation.escrow.noticeHTML = value
                case "transport_map": c.installation.transport.transportMap = value
                case "tls_ca_file": c.installation.transport.tlsCAFile = value
                case "tls_probe": c.installation.transport.tlsProbe = try boolean(value, key, fail)
                case "smtp_port":
                    guard let p = UInt16(value), p > 0 else { throw fail("smtp_port must be a port number (1-65535)") }
                    c.installation.transport.smtpPort = p
                case "tls_probe_timeout", "tls_cache_ttl":
                    guard let n = Double(value), n > 0, n < 1e9 else { throw fail("\(key) must be a positive number of seconds") }
                    if key == "tls_probe_timeout" { c.installation.transport.tlsProbeTimeout = n } else { c.installation.transport.tlsCacheTTL = n }
                case "tls_static":
                    for item in list(value) {
                        let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
                        guard kv.count == 2, let v = TLSVerdict(rawValue: kv[1].lowercased()) else {
                            throw fail("tls_static entries are DOMAIN=VERDICT (verified, encrypted, none, unreachable)")
                        }
                        c.installation.transport.tlsStatic[kv[0].lowercased()] = v
                    }
                default: break
                }
                continue
            }
            guard keyWords.count == 1 else { throw fail("unexpected words in key \"\(keyPart)\"") }
            if key == "domains" {
                guard case .account(let name) = section else { throw fail("domains belongs in an [account NAME] section") }
                c.accounts[name]?.domains = list(value).map { $0.lowercased() }
                continue
            }
            var s: SenderSettings
            switch section {
            case .global: s = c.global
            case .account(let n): s = c.accounts[n]!.settings
            case .domain(let d): s = c.domains[d]!
            case .user(let u): s = c.users[u]!
            }
            try apply(key, value, to: &s, fail)
            switch section {
            case .global: c.global = s
            case .account(let n): c.accounts[n]!.settings = s
            case .domain(let d): c.domains[d] = s
            case .user(let u): c.users[u] = s
            }
        }
        try c.validate()
        return c
    }

    private static func apply(_ key: String, _ value: String, to s: inout SenderSettings, _ fail: (String) -> ConfigurationError) throws {
        switch key {
        case "tls_only": s.tlsOnly = try boolean(value, key, fail)
        case "tls_exclude": s.tlsExclude = list(value)
        case "tls_min_verdict":
            guard let v = TLSVerdict(rawValue: value.lowercased()), v == .verified || v == .encrypted else {
                throw fail("tls_min_verdict must be verified or encrypted")
            }
            s.tlsMinimumVerdict = v
        case "escrow_login": s.escrowLogin = try boolean(value, key, fail)
        case "escrow_question": s.escrowQuestion = value
        case "escrow_answer": s.escrowAnswer = value
        case "fallback":
            guard let f = FallbackAction(rawValue: value.lowercased()) else { throw fail("fallback must be insecure or bounce") }
            s.fallback = f
        case "encrypt_trigger": s.encryptTrigger = value
        case "encrypt_header":
            guard !value.isEmpty, value.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }) else {
                throw fail("encrypt_header must be a header field name")
            }
            guard !value.uppercased().hasPrefix(Envelope.fieldPrefix) else {
                throw fail("encrypt_header cannot be an X-SL- field: those are removed on entry")
            }
            s.encryptHeader = value
        case "insecure_trigger": s.insecureTrigger = value   // empty: none, overriding broader levels
        case "allow_insecure_trigger": s.allowInsecureTrigger = try boolean(value, key, fail)
        case "strip_triggers": s.stripTriggers = try boolean(value, key, fail)
        case "pki_preference":
            guard let p = PKIPreference(rawValue: value.lowercased()) else { throw fail("pki_preference must be pgp or smime") }
            s.pkiPreference = p
        case "preferred_book": s.preferredBook = value.lowercased()   // empty: none
        case "subscribed_books": s.subscribedBooks = list(value).map { $0.lowercased() }
        case "pgp_sign": s.pgpSign = try boolean(value, key, fail)
        case "smime_sign": s.smimeSign = try boolean(value, key, fail)
        case "smime_encrypt_to_self": s.smimeEncryptToSelf = try boolean(value, key, fail)
        case "smime_certificate": s.smimeCertificate = value
        case "smime_key": s.smimeKey = value
        case "pgp_encrypt_to_self": s.pgpEncryptToSelf = try boolean(value, key, fail)
        case "internal_domains": s.internalDomains = list(value).map { $0.lowercased() }   // empty: none
        case "protected_subject":
            guard !value.contains("\r"), !value.contains("\n") else { throw fail("protected_subject must be one line") }
            s.protectedSubject = value
        default:
            throw fail("unknown setting \"\(key)\"; see sl.conf(5) for the list")
        }
    }

    private func validate() throws {
        let bookNames = Set(installation.books.map(\.name))
        func check(_ name: String?, _ what: String) throws {
            if let name, !name.isEmpty, !bookNames.contains(name) {
                throw ConfigurationError(source, 0, "\(what) names book \"\(name)\", which no `book \(name) = PATH` line defines")
            }
        }
        try check(installation.defaultBook, "default_book")
        let all: [(String, SenderSettings)] = [("global", global)]
            + accounts.values.map { ("[account \($0.name)]", $0.settings) }
            + domains.map { ("[domain \($0.key)]", $0.value) }
            + users.map { ("[user \($0.key)]", $0.value) }
        var seenDomains: [String: String] = [:]
        for a in accounts.values.sorted(by: { $0.name < $1.name }) {
            for d in a.domains {
                if let other = seenDomains[d] {
                    throw ConfigurationError(source, 0, "domain \(d) is listed by both account \(other) and account \(a.name)")
                }
                seenDomains[d] = a.name
            }
        }
        for (where_, s) in all {
            try check(s.preferredBook, "preferred_book in \(where_)")
            for b in s.subscribedBooks ?? [] { try check(b, "subscribed_books in \(where_)") }
            if (s.smimeCertificate == nil) != (s.smimeKey == nil) {
                throw ConfigurationError(source, 0, "\(where_) sets only one of smime_certificate and smime_key; set both")
            }
            if (s.escrowQuestion == nil) != (s.escrowAnswer == nil) {
                throw ConfigurationError(source, 0, "\(where_) sets only one of escrow_question and escrow_answer; set both")
            }
        }
    }

    static func boolean(_ v: String, _ key: String, _ fail: (String) -> ConfigurationError) throws -> Bool {
        switch v.lowercased() {
        case "yes", "true", "on", "1": return true
        case "no", "false", "off", "0": return false
        default: throw fail("\(key) must be yes or no")
        }
    }

    /// Lists are separated by commas and/or white space, as in Postfix.
    static func list(_ v: String) -> [String] {
        v.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }).map(String.init)
    }
}

extension InstallationSettings {
    /// Relative paths in a configuration file are relative to the file's directory, so
    /// a configuration and its books can move together.
    mutating func resolvePaths(relativeTo directory: String) {
        func resolve(_ p: String) -> String {
            p.hasPrefix("/") || directory.isEmpty ? p : directory + "/" + p
        }
        auditLog = auditLog.map(resolve)
        transport.tlsCache = transport.tlsCache.map(resolve)
        transport.transportMap = transport.transportMap.map(resolve)
        delivery.queueDirectory = delivery.queueDirectory.map(resolve)
        delivery.relayCredentials = delivery.relayCredentials.map(resolve)
        transport.tlsCAFile = transport.tlsCAFile.map(resolve)
        escrowAccounts = escrowAccounts.map(resolve)
        stateDirectory = stateDirectory.map(resolve)
        escrow.store = escrow.store.map(resolve)
        escrow.pepperFile = escrow.pepperFile.map(resolve)
        escrow.noticeText = escrow.noticeText.map(resolve)
        escrow.noticeHTML = escrow.noticeHTML.map(resolve)
        pgp.homeDirectory = pgp.homeDirectory.map(resolve)
        smime.anchors = smime.anchors.map(resolve)
        books = books.map { ($0.name, resolve($0.path)) }
    }
}

extension SenderSettings {
    mutating func resolvePaths(relativeTo directory: String) {
        func resolve(_ p: String) -> String { p.hasPrefix("/") || directory.isEmpty ? p : directory + "/" + p }
        smimeCertificate = smimeCertificate.map(resolve)
        smimeKey = smimeKey.map(resolve)
    }
}
