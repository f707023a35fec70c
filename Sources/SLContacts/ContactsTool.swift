// sl-contacts without its argument parsing: a contact's key or certificate from
// wherever the administrator has it, checked for the contact's address, written as
// a vCard 4 card the classifier reads, and its fingerprints printed so that they
// can be confirmed with the contact by another way than email.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage
internal import SLOpenSSL
import SLHTTPS
import SLPGP
import SLPolicy
import SLSMIME

public enum ContactsTool {
    /// Where the contact's OpenPGP key comes from.
    public enum PGPSource: Sendable, Equatable {
        case file(String)
        /// The GnuPG home to export from; nil for GnuPG's own choice (GNUPGHOME, ~/.gnupg).
        case keyring(home: String?)
        case webKeyDirectory(HTTPSOptions)
    }

    /// Where the contact's S/MIME certificate comes from.
    public enum SMIMESource: Sendable, Equatable {
        case file(String)
        /// A message the contact signed (.eml).
        case signedMessage(String)
    }

    public struct AddRequest: Sendable {
        public var book: String
        public var address: String
        public var name: String?
        public var pgp: PGPSource?
        public var smime: SMIMESource?
        public var escrow: EscrowQuestion?
        public var replace: Bool

        public init(book: String, address: String, name: String? = nil, pgp: PGPSource? = nil, smime: SMIMESource? = nil,
                    escrow: EscrowQuestion? = nil, replace: Bool = false) {
            self.book = book
            self.address = address
            self.name = name
            self.pgp = pgp
            self.smime = smime
            self.escrow = escrow
            self.replace = replace
        }
    }

    /// The address as it goes into the book: an addr-spec, lowercased.
    public static func canonicalAddress(_ text: String) throws -> String {
        guard let a = try? EmailAddress(parsing: text.trimmingCharacters(in: .whitespaces)), a.displayName == nil else {
            throw ContactsError(.usage, "\"\(text)\" is not an email address (expected local@domain)")
        }
        return a.addrSpec.lowercased()
    }

    /// Adds (or with `replace`, updates) the contact; returns what `show` prints for it.
    /// `warn` receives what the administrator should know but does not stop the add
    /// (a certificate sl-encrypt-smime would not trust as things stand).
    public static func add(_ request: AddRequest, warn: (String) -> Void) throws -> String {
        let address = try canonicalAddress(request.address)
        var update = ContactUpdate(name: request.name.map { $0.trimmingCharacters(in: .whitespaces) })
        if update.name?.isEmpty == true { throw ContactsError(.usage, "--name is empty") }
        if let escrow = request.escrow {
            guard !escrow.question.trimmingCharacters(in: .whitespaces).isEmpty else { throw ContactsError(.usage, "the escrow question is empty") }
            guard !escrow.answer.isEmpty else { throw ContactsError(.usage, "the escrow answer is empty") }
            update.escrow = escrow
        }
        var origins: [String] = []
        if let source = request.pgp {
            let (key, origin) = try pgpKey(from: source, for: address)
            update.pgpKey = key
            origins.append("pgp key from \(origin)")
        }
        if let source = request.smime {
            let (cert, origin) = try certificate(from: source, for: address, warn: warn)
            update.smimeCertificate = cert
            origins.append("certificate from \(origin)")
        }
        guard request.pgp != nil || request.smime != nil || request.escrow != nil || (request.replace && update.name != nil) else {
            throw ContactsError(.usage, "nothing to add: give a key (--pgp-key, --pgp-from-keyring, --pgp-from-wkd), a certificate (--smime-cert, --smime-from-message) or --escrow-question")
        }
        let (file, contact) = try AddressBookEditor.add(update, for: address, to: request.book, replace: request.replace)
        var out = describe(contact, address: address)
        out += "file      \(file)\n"
        for o in origins { out += "source    \(o)\n" }
        return out
    }

    public static func show(book: String, address: String) throws -> String {
        let address = try canonicalAddress(address)
        let loaded = try AddressBook.load(name: book, path: book)
        guard let contact = loaded.contact(for: address) else {
            throw AddressBookEditError(.notFound, "\(address) is not in the address book \(book)")
        }
        return describe(contact, address: address)
    }

    public static func remove(book: String, address: String) throws -> [String] {
        try AddressBookEditor.remove(try canonicalAddress(address), from: book)
    }

    /// One line per contact, or with `json` one JSON object per line (no answer, ever).
    public static func list(book: String, json: Bool) throws -> String {
        let loaded = try AddressBook.load(name: book, path: book)
        var out = ""
        for c in loaded.contacts {
            if json {
                let summary = Summary(c)
                let e = JSONEncoder()
                e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                out += String(decoding: try e.encode(summary), as: UTF8.self) + "\n"
            } else {
                let methods = methods(of: c)
                out += "\(c.addresses.joined(separator: ","))  \(methods.isEmpty ? "-" : methods.joined(separator: ","))  \(OneLine.of(c.name ?? ""))\n"
            }
        }
        return out
    }

    /// What `list --json` prints for a contact.
    struct Summary: Encodable {
        let addresses: [String]
        let name: String?
        let pgpFingerprints: [String]
        let pinnedPGPFingerprint: String?
        let smimeSHA256: [String]
        let escrowQuestion: Bool
        let methods: [String]
        init(_ c: Contact) {
            addresses = c.addresses
            name = c.name
            pgpFingerprints = c.pgpKeys.map(\.fingerprint)
            pinnedPGPFingerprint = c.pinnedPGPFingerprint
            smimeSHA256 = c.smimeCertificates.map(\.sha256Fingerprint)
            escrowQuestion = c.escrow != nil
            methods = ContactsTool.methods(of: c)
        }
    }

    static func methods(of c: Contact) -> [String] {
        var m: [String] = []
        if !c.pgpKeys.isEmpty || c.pinnedPGPFingerprint != nil { m.append("pgp") }
        if !c.smimeCertificates.isEmpty { m.append("smime") }
        if c.escrow != nil { m.append("question") }
        return m
    }

    /// The contact as the administrator confirms it: fingerprints in the forms gpg
    /// and openssl print, the question (never the answer).
    static func describe(_ c: Contact, address: String) -> String {
        var out = "address   \(address)\n"
        if c.addresses.count > 1 { out += "also      \(c.addresses.filter { $0 != address }.joined(separator: ", "))\n" }
        if let name = c.name { out += "name      \(OneLine.of(name))\n" }
        for k in c.pgpKeys {
            out += "pgp       \(groupedFingerprint(k.fingerprint))\(c.pinnedPGPFingerprint == k.fingerprint ? "  (pinned)" : "")\n"
        }
        if let pin = c.pinnedPGPFingerprint, !c.pgpKeys.contains(where: { $0.fingerprint == pin }) {
            out += "pgp       \(groupedFingerprint(pin))  (pinned; the key is in the GnuPG home, not in the card)\n"
        }
        for cert in c.smimeCertificates {
            out += "smime     SHA-256 \(colonFingerprint(cert.sha256Fingerprint))\n"
            if let x = try? X509Certificate(der: cert.der) {
                out += "          \(OneLine.of(x.subject)), valid until \(x.notAfter)\n"
            }
        }
        if c.smimeCertificates.isEmpty && c.pgpKeys.isEmpty && c.pinnedPGPFingerprint == nil && c.escrow == nil {
            out += "methods   none (no key, certificate or question)\n"
        }
        if let q = c.escrow { out += "question  \(OneLine.of(q.question))  (answer set)\n" }
        return out
    }

    /// As gpg --fingerprint prints it: groups of four, two spaces in the middle.
    public static func groupedFingerprint(_ hex: String) -> String {
        let chars = Array(hex)
        var groups: [String] = []
        var i = 0
        while i < chars.count { groups.append(String(chars[i..<min(i + 4, chars.count)])); i += 4 }
        let half = groups.count / 2
        return groups[..<half].joined(separator: " ") + "  " + groups[half...].joined(separator: " ")
    }

    /// As openssl x509 -fingerprint -sha256 prints it: AB:CD:...
    public static func colonFingerprint(_ hex: String) -> String {
        let chars = Array(hex)
        return stride(from: 0, to: chars.count, by: 2).map { String(chars[$0..<min($0 + 2, chars.count)]) }.joined(separator: ":")
    }

    // MARK: sources

    static func pgpKey(from source: PGPSource, for address: String) throws -> (PGPKeyRef, String) {
        let vetted: (fingerprint: String, keyData: Bytes)
        let origin: String
        switch source {
        case .file(let path):
            let data = try readInput(path)
            try refuseSecretKey(data, path)
            vetted = try PGPKeyring.vet(data, for: address, source: path)
            origin = path
        case .keyring(let home):
            if let home {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: home, isDirectory: &isDirectory), isDirectory.boolValue else {
                    throw ContactsError(.usage, "the GnuPG home \(home) does not exist; give --gnupg-home the directory gpg uses (gpgconf --list-dirs homedir)")
                }
            }
            let ring = try PGPKeyring(homeDirectory: home)
            vetted = try ring.exportKey(for: address)
            origin = "the GnuPG home \(home ?? ProcessInfo.processInfo.environment["GNUPGHOME"] ?? "~/.gnupg")"
        case .webKeyDirectory(let options):
            let (data, url) = try fetchFromWebKeyDirectory(address, options: options)
            vetted = try PGPKeyring.vet(data, for: address, source: "the key at \(url)")
            origin = url
        }
        let key: PGPKeyRef
        do { key = try PGPKeyRef(keyData: vetted.keyData) } catch {
            throw ContactsError(.data, "the key GnuPG exported does not read back: \(error)")
        }
        guard key.fingerprint == vetted.fingerprint.uppercased() else {
            throw ContactsError(.data, "the key exported is \(key.fingerprint), not the key \(vetted.fingerprint) GnuPG chose")
        }
        return (key, origin)
    }

    /// The advanced method, then (only when its host does not exist) the direct one.
    static func fetchFromWebKeyDirectory(_ address: String, options: HTTPSOptions) throws -> (Bytes, String) {
        let where_ = try WebKeyDirectory.locations(for: address)
        var url = where_.advanced
        var response = try get(url, options: options)
        if response == .noSuchHost {
            url = where_.direct
            response = try get(url, options: options)
        }
        switch response {
        case .body(let data):
            guard !data.isEmpty else { throw ContactsError(.unavailable, "\(url) answered with an empty key") }
            return (data, url)
        case .status(let code) where code == 404 || code == 410:
            throw ContactsError(.unavailable, "the web key directory has no key for \(address) (HTTP \(code) from \(url)); ask the contact for the key as a file")
        case .status(let code) where code >= 500:
            throw ContactsError(.temporary, "\(url) answered HTTP \(code); try again later")
        case .status(let code):
            throw ContactsError(.unavailable, "\(url) answered HTTP \(code)\((300..<400).contains(code) ? " (a redirect, which is not followed)" : ""); ask the contact for the key as a file")
        case .noSuchHost:
            throw ContactsError(.unavailable, "neither openpgpkey.\(address.split(separator: "@").last ?? "") nor the domain itself resolves; the domain publishes no web key directory")
        }
    }

    /// HTTPSClient.get, its failures in sl-contacts' words.
    static func get(_ url: String, options: HTTPSOptions) throws -> HTTPSResponse {
        do { return try HTTPSClient.get(url, options: options) } catch let e as HTTPSError {
            switch e.kind {
            case .usage: throw ContactsError(.usage, e.description)
            case .tooLarge: throw ContactsError(.data, "\(e.description); that is not a key")
            case .certificate, .transfer: throw ContactsError(.temporary, e.description)
            }
        }
    }

    static func certificate(from source: SMIMESource, for address: String, warn: (String) -> Void) throws -> (SMIMECertificateRef, String) {
        let certificate: X509Certificate
        var carried: [X509Certificate] = []
        let origin: String
        switch source {
        case .file(let path):
            let data = try readInput(path)
            do { certificate = try X509Certificate(derOrPEM: data) } catch {
                throw ContactsError(.data, "\(path) is not a certificate (PEM or DER): \(error)")
            }
            guard certificate.emailAddresses.contains(address) else {
                let named = certificate.emailAddresses
                throw ContactsError(.data, "the certificate in \(path) is for \(named.isEmpty ? "no email address" : named.joined(separator: ", ")), not \(address)")
            }
            origin = path
        case .signedMessage(let path):
            (certificate, carried) = try SignedMessageCertificate.signer(of: try readInput(path), for: address)
            origin = "the message signed by it in \(path)"
        }
        let ref: SMIMECertificateRef
        do { ref = try SMIMECertificateRef(derOrPEM: try certificate.der()) } catch {
            throw ContactsError(.data, "the certificate does not read back: \(error)")
        }
        // The checks sl-encrypt-smime makes when it encrypts, asked now: a certificate
        // it would refuse is still saved (the trust store may change), with a warning.
        if let checker = try? CertificateChecker(), let why = checker.rejection(of: certificate, for: address, intermediates: carried) {
            warn("warning: sl-encrypt-smime would refuse this certificate now (\(why)); with a private CA, name it in smime_ca_file")
        }
        return (ref, origin)
    }

    /// A file named on the command line, at most 32 MiB.
    static func readInput(_ path: String) throws -> Bytes {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ContactsError(.noInput, "cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var data = Bytes()
        var chunk = Bytes(repeating: 0, count: 1 << 16)
        while true {
            let n: Int
            do { n = try FileDescriptorIO.read(fd, into: &chunk, count: chunk.count) } catch {
                throw ContactsError(.noInput, "cannot read \(path): \(error)")
            }
            if n == 0 { break }
            data += chunk[..<n]
            guard data.count <= 32 << 20 else { throw ContactsError(.data, "\(path) is larger than 32 MiB; that is not a key or a signed message") }
        }
        guard !data.isEmpty else { throw ContactsError(.data, "\(path) is empty") }
        return data
    }

    /// A secret key never goes near the book (or into a scratch keyring, where gpg
    /// would want its passphrase).
    static func refuseSecretKey(_ data: Bytes, _ path: String) throws {
        let text = String(decoding: data.prefix(1 << 20), as: UTF8.self)
        if text.contains("PRIVATE KEY BLOCK") || text.contains("SECRET KEY BLOCK") {
            throw ContactsError(.data, "\(path) holds a SECRET key; give the contact's public key (gpg --export --armor ADDRESS)")
        }
        guard let first = data.first, first & 0x80 != 0 else { return }
        let tag = first & 0x40 != 0 ? first & 0x3F : (first & 0x3C) >> 2
        if tag == 5 || tag == 7 {
            throw ContactsError(.data, "\(path) holds a SECRET key; give the contact's public key (gpg --export ADDRESS)")
        }
    }
}
