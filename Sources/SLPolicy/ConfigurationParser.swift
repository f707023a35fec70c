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
        return try parse(text, source: path, relativeTo: (path as NSString).deletingLastPathComponent)
    }

    private enum Section {
        case global
        case account(String)
        case domain(String)
        case user(String)
    }

    /// Parses configuration text. Unknown keys, keys at the wrong level and bad values
    /// are errors with the line number: a typo must never silently weaken policy.
    /// Relative paths are taken relative to `directory` (none: as written).
    public static func parse(_ text: String, source: String = "sl.conf", relativeTo directory: String = "") throws -> Configuration {
        var c = Configuration()
        c.source = source
        var section = Section.global
        // Lines end in LF or CRLF. Split on Characters, "\r\n" is one Character (one
        // grapheme), not a "\r" and a "\n": splitting on "\n" alone would leave a
        // CRLF file one line, whose first free-text value swallowed the rest.
        for (n, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
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
            guard let setting = settings[key] else { throw fail("unknown setting \"\(key)\"; see sl.conf(5) for the list") }
            let v = SettingValue(key: key, text: value, directory: directory, source: source, line: lineNumber)
            func atTheTop() throws {
                guard case .global = section else { throw fail("\(key) is an installation setting; put it before the first section") }
            }
            func keyAlone() throws {
                guard keyWords.count == 1 else { throw fail("unexpected words in key \"\(keyPart)\"") }
            }
            switch setting {
            case .installation(let apply):
                try atTheTop()
                try keyAlone()
                try apply(&c.installation, v)
            case .namedInstallation(let apply):
                try atTheTop()
                guard keyWords.count == 2 else { throw fail("write \(key) NAME = PATH") }
                try apply(&c.installation, keyWords[1].lowercased(), v)
            case .account(let apply):
                try keyAlone()
                guard case .account(let name) = section else { throw fail("\(key) belongs in an [account NAME] section") }
                try apply(&c.accounts[name]!, v)
            case .sender(let apply):
                try keyAlone()
                switch section {
                case .global: try apply(&c.global, v)
                case .account(let n): try apply(&c.accounts[n]!.settings, v)
                case .domain(let d): try apply(&c.domains[d]!, v)
                case .user(let u): try apply(&c.users[u]!, v)
                }
            }
        }
        try c.validate()
        return c
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
}
