import Foundation
import Testing
@testable import SLPolicy

/// sl.conf(5) and the parser's key table describe the same keys: each documented
/// key is accepted at its documented level and changes the configuration, each
/// key the parser accepts is documented, and anything else is an error naming
/// file and line.
@Suite struct ConfigurationKeyTests {
    /// A key as sl.conf(5) lists it: `.It Cm KEY Ns = Ns Ar path` (or `Cm book Ar
    /// name Ns = ...`, and several keys on one `.It` line).
    struct DocumentedKey {
        let key: String
        /// The word between key and `=` (`name` for `book NAME = PATH`), if any.
        let name: String?
        /// What the value is (`path`, `boolean`, `days`, ...).
        let value: String
        let installation: Bool
    }

    static let documented: [DocumentedKey] = {
        let page = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("man/man5/sl.conf.5")
        let text = (try? String(contentsOf: page, encoding: .utf8)) ?? ""
        let entry = try! Regex(#"Cm ([a-z_]+)(?: Ar ([a-z]+))? Ns = Ns (?:Ar|Cm) ([A-Za-z0-9-]+)"#)
        var keys: [DocumentedKey] = []
        var installation: Bool?
        for line in text.split(separator: "\n") {
            if line.hasPrefix(".Sh ") {
                installation = line == ".Sh INSTALLATION SETTINGS" ? true : line == ".Sh SENDER SETTINGS" ? false : nil
            }
            guard let installation, line.hasPrefix(".It Cm ") else { continue }
            for m in line.matches(of: entry) {
                keys.append(DocumentedKey(key: String(m.output[1].substring!), name: m.output[2].substring.map(String.init),
                                          value: String(m.output[3].substring!), installation: installation))
            }
        }
        return keys
    }()

    /// A valid value for every key, unlike its default and unlike `context`'s values;
    /// paths are relative, to show they are taken relative to the file.
    static let samples: [String: String] = [
        "audit_log": "log/audit.jsonl",
        "tls_cache": "tls.json",
        "tls_static": "example.org=verified, example.net=none",
        "tls_cache_ttl": "3600",
        "tls_probe": "no",
        "tls_probe_timeout": "5",
        "dns_server": "127.0.0.1:5353",
        "dnssec_resolver": "127.0.0.1:5354",
        "transport_map": "transport",
        "smtp_port": "2525",
        "mta_sts_port": "8443",
        "tls_ca_file": "ca.pem",
        "book": "books/other.vcf",
        "default_book": "b",
        "escrow_accounts": "accounts.txt",
        "state_directory": "state",
        "ask_sender": "no",
        "hostname": "mx.example.org",
        "pgp_homedir": "gnupg",
        "smime_anchors": "anchors/one.pem, anchors/two.pem",
        "smime_system_cas": "no",
        "smime_cipher": "aes256-gcm",
        "queue_directory": "queue",
        "queue_lifetime": "2",
        "relay": "smtp.example.org:587",
        "relay_tls": "implicit",
        "relay_credentials": "relay.secret",
        "reroute_command": "/usr/sbin/sendmail -G -i",
        "escrow_store": "escrow",
        "escrow_pepper_file": "pepper",
        "escrow_url": "https://escrow.example.org/m",
        "escrow_expiry": "14",
        "escrow_expiry_max": "60",
        "escrow_max_attempts": "3",
        "escrow_kdf_passes": "4",
        "escrow_kdf_memory": "128",
        "escrow_message_center": "yes",
        "escrow_notice_from": "Escrow <escrow@example.org>",
        "escrow_notice_subject": "A message from {sender}",
        "escrow_notice_text": "notice.txt",
        "escrow_notice_html": "notice.html",
        "portal_listen": "[::1]:8443",
        "portal_tls_certificate": "portal/chain.pem",
        "portal_tls_key": "portal/key.pem",
        "portal_behind_proxy": "yes",
        "portal_session_minutes": "30",
        "portal_rate_limit": "25",
        "delivery_record": "3",
        "delay_warning_time": "2",
        "portal_submit_command": "/usr/sbin/sendmail -i",
        "portal_max_replies": "3",
        "portal_upload_limit": "20",
        "portal_securesend": "yes",
        "portal_securesend_recipients": "staff@clinic.example, @clinic.example",
        "portal_securesend_daily": "5",
        "portal_securesend_expiry": "48",
        "domains": "b.example",
        "internal_domains": "example.org, .example.net",
        "tls_only": "yes",
        "tls_exclude": "example.com",
        "tls_min_verdict": "encrypted",
        "tls_reporting": "yes",
        "tls_report_log": "sessions.jsonl",
        "tls_report_organization": "Clinic",
        "tls_report_contact": "postmaster@clinic.example",
        "escrow_login": "yes",
        "escrow_question": "Which colour?",
        "escrow_answer": "blue",
        "fallback": "insecure",
        "encrypt_trigger": "[secure]",
        "encrypt_header": "X-Secure",
        "insecure_trigger": "[plain]",
        "allow_insecure_trigger": "yes",
        "strip_triggers": "no",
        "pki_preference": "smime",
        "preferred_book": "b",
        "subscribed_books": "b",
        "pgp_sign": "yes",
        "pgp_encrypt_to_self": "yes",
        "protected_subject": "(encrypted)",
        "smime_sign": "yes",
        "smime_encrypt_to_self": "yes",
        "smime_certificate": "me.pem",
        "smime_key": "me.key",
        "open_tracking": "yes",
    ]

    /// A valid configuration with `line` at the level its key belongs to. It sets
    /// what some samples need (a book to name) and both halves of each pair, so a
    /// sample line, coming last at its level, overrides one half.
    static func context(with line: String = "", for setting: Setting? = nil) -> String {
        func at(_ here: Bool) -> String { here ? line + "\n" : "" }
        var installation = false, account = false, sender = false
        switch setting {
        case .installation, .namedInstallation: installation = true
        case .account: account = true
        case .sender: sender = true
        case nil: break
        }
        return "book b = /books/b.vcf\n" + at(installation)
            + "[account a]\ndomains = a.example\n" + at(account)
            + "[user u@a.example]\nescrow_question = q0\nescrow_answer = a0\n"
            + "smime_certificate = /c0.pem\nsmime_key = /k0.pem\n" + at(sender)
    }

    @Test func theManualPageListsKeys() {
        #expect(Self.documented.count > 50)
        #expect(Set(Self.documented.map(\.key)).count == Self.documented.count, "a key documented twice")
    }

    @Test func everyDocumentedKeyIsAcceptedAtItsLevelAndChangesTheConfiguration() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sl-keys-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func load(_ text: String) throws -> String {
            try text.write(toFile: dir + "/sl.conf", atomically: true, encoding: .utf8)
            return String(describing: try Configuration.load(path: dir + "/sl.conf"))
        }
        let base = try load(Self.context())
        for d in Self.documented {
            guard let sample = Self.samples[d.key] else { Issue.record("no sample value for \(d.key)"); continue }
            guard let setting = Configuration.settings[d.key] else { Issue.record("\(d.key) is documented but not accepted"); continue }
            let line = [d.key, d.name, "=", sample].compactMap { $0 }.joined(separator: " ")
            let loaded: String
            do { loaded = try load(Self.context(with: line, for: setting)) } catch {
                Issue.record("\(line): \(error)"); continue
            }
            // Bools, not the descriptions: a failure would print two whole configurations.
            let changed = loaded != base
            #expect(changed, "\(line) changes nothing")
            if d.value == "path" || d.value == "dir" {
                let first = sample.split(separator: ",").first.map(String.init) ?? sample
                let resolved = loaded.contains("\"\(dir)/\(first)\"")
                #expect(resolved, "\(line): the path is not taken relative to the file")
            }
        }
    }

    @Test func everyAcceptedKeyIsDocumentedAtItsLevel() {
        let documented = Dictionary(uniqueKeysWithValues: Self.documented.map { ($0.key, $0) })
        for (key, setting) in Configuration.settings {
            guard let d = documented[key] else { Issue.record("\(key) is accepted but not in sl.conf(5)"); continue }
            switch setting {
            case .installation: #expect(d.installation && d.name == nil, "\(key)")
            case .namedInstallation: #expect(d.installation && d.name != nil, "\(key)")
            case .sender, .account: #expect(!d.installation && d.name == nil, "\(key)")
            }
        }
    }

    @Test(arguments: [
        ("tls_only = no\n\n[user u@example.org]\nfallback = bounce\nescrow_anwser = x\n", 5, "unknown setting \"escrow_anwser\""),
        ("Audit_Logg = /var/log/sl.jsonl\n", 1, "unknown setting \"audit_logg\""),
        ("audit_log main = /var/log/sl.jsonl\n", 1, "unexpected words in key \"audit_log main\""),
        ("book = /b.vcf\n", 1, "write book NAME = PATH"),
        ("[domain example.org]\ndomains = example.org\n", 2, "domains belongs in an [account NAME] section"),
        ("[domain example.org]\nhostname = mx.example.org\n", 2, "hostname is an installation setting"),
    ])
    func aKeyOutOfPlaceIsAnErrorNamingFileAndLine(_ text: String, _ line: Int, _ words: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sl-keys-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/sl.conf"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        #expect {
            _ = try Configuration.load(path: path)
        } throws: { error in
            guard let e = error as? ConfigurationError else { return false }
            return e.file == path && e.line == line && e.message.contains(words)
                && e.description.hasPrefix("\(path):\(line): ")
        }
    }
}
