import Foundation
import SLCommand
import SLMessage
import SLOpenSSL
import SLPolicy
import SLSMIME

/// sl-encrypt-smime without its argument parsing.
///
/// In a pipeline it encrypts the messages whose routing says `smime`, to the
/// certificate the routing names (from the address book, by SHA-256 fingerprint),
/// and passes every other message through byte for byte. Alone (`-r`), it encrypts
/// every message to the certificates given with `--certificate`.
public struct EncryptSMIMETool: Sendable {
    public var configurationPath: String?
    public var recipients: [String] = []
    public var certificateFiles: [String] = []
    public var anchorFiles: [String] = []
    public var systemCAs: Bool?
    public var stream = StreamOptions()
    public var sign: Bool?
    public var encryptToSelf: Bool?
    public var signerCertificateFile: String?
    public var signerKeyFile: String?
    /// `--cipher`: replaces `smime_cipher`; a contact's `X-SL-SMIME-GCM` still wins.
    public var cipher: SMIMECipher?

    public init() {}

    static let tool = "sl-encrypt-smime"

    public func run() throws {
        let configuration = try ConfigurationLocation.loadIfPresent(configurationPath)
        var anchors = try anchorFiles.flatMap { try Self.loadCertificates($0) }
        for file in configuration?.installation.smime.anchors ?? [] {
            do { anchors += try Self.loadCertificates(file) } catch {
                throw ConfigurationError(configuration?.source ?? "sl.conf", 0, "smime_anchors: \(error)")
            }
        }
        let checker = try CertificateChecker(systemCAs: systemCAs ?? configuration?.installation.smime.systemCAs ?? true,
                                             anchors: anchors)
        // A --certificate file may hold the recipient's certificate followed by its
        // intermediate CAs: the first is the recipient's, the rest complete chains.
        let bundles = try certificateFiles.map(Self.loadCertificates)
        let given = bundles.compactMap(\.first)
        let intermediates = bundles.flatMap { $0.dropFirst() }
        let books = configuration.map { BookShelf(books: $0.installation.books, defaultBook: $0.installation.defaultBook) }
        let filter = try StreamFilter(tool: Self.tool, options: stream)
        filter.bareOutputForBareInput = true
        let hostname = configuration?.installation.hostname ?? localHostName()
        let standard = ContentCipher(cipher ?? configuration?.installation.smime.cipher ?? InstallationSettings().smime.cipher)
        try filter.process { message in
            try encrypt(message, checker: checker, given: given, intermediates: intermediates, configuration: configuration, books: books,
                        standard: standard, hostname: hostname)
        }
        try filter.commit()
    }

    /// `standard` is the cipher for recipients whose contact does not choose one.
    func encrypt(_ message: Message, checker: CertificateChecker, given: [X509Certificate], intermediates: [X509Certificate],
                 configuration: Configuration?, books: BookShelf?, standard: ContentCipher, hostname: String) throws -> [Message] {
        let envelope = recipients.isEmpty ? try Envelope.read(from: message.header) : nil
        guard !recipients.isEmpty || envelope?.method == .smime else { return [message] }   // not ours
        if let kind = try EncryptionDetector.existingEncryption(of: message) {
            Diagnostics.warn(Self.tool, "message \(message.index) is already \(kind.rawValue) encrypted; passed on unchanged")
            return [message]
        }
        var chosen: [X509Certificate] = []
        var refusals = RecipientRefusals(warn: { Diagnostics.warn(Self.tool, $0) })
        var cipher = standard
        if !recipients.isEmpty {
            for r in recipients {
                guard let c = given.first(where: { checker.rejection(of: $0, for: r, intermediates: intermediates) == nil }) else {
                    let reasons = given.compactMap { checker.rejection(of: $0, for: r, intermediates: intermediates)?.description }
                    throw RecipientCertificateError(recipient: r, problem: given.isEmpty
                        ? "no certificate given (use --certificate FILE)"
                        : "no usable certificate: " + Set(reasons).sorted().joined(separator: "; "))
                }
                chosen.append(c)
            }
        } else if let envelope {
            guard let books else {
                throw ConfigurationError(ConfigurationLocation.defaultPath, 0, "a pipeline run needs the configuration that names the address books (--config or $SL_CONFIG)")
            }
            var wanted: Set<ContentCipher> = []
            // A recipient whose certificate is gone or fails its checks is left out
            // and reported to the sender; the others get their copy.
            for r in envelope.recipients {
                let cert = try refusals.attempt(r.address) { () throws -> X509Certificate in
                    guard let fingerprint = r.parameter(.smime), let bookName = r.parameter(.book),
                          let contact = try books.book(named: bookName)?.contact(for: r.address),
                          let ref = contact.smimeCertificates.first(where: { $0.sha256Fingerprint.uppercased() == fingerprint.uppercased() }) else {
                        throw RecipientCertificateError(recipient: r.address, problem: "the certificate named by the routing is not in the address book")
                    }
                    let cert = try X509Certificate(derOrPEM: ref.der)
                    if let why = checker.rejection(of: cert, for: r.address) {
                        throw RecipientCertificateError(recipient: r.address, problem: why.description)
                    }
                    return cert
                }
                guard let cert else { continue }
                switch r.parameter(.gcm) {      // the contact's X-SL-SMIME-GCM, when it has one
                case "yes": wanted.insert(.aes256GCM)
                case "no": wanted.insert(.aes256CBC)
                default: wanted.insert(standard)
                }
                chosen.append(cert)
            }
            // One copy, one cipher: when the recipients differ, the one all of them read.
            if wanted.count > 1 {
                cipher = .aes256CBC
                Diagnostics.warn(Self.tool, "message \(message.index): a recipient cannot read AES-GCM; using AES-256-CBC for every recipient of this copy")
            } else if let only = wanted.first {
                cipher = only
            }
        }
        var sender = envelope?.sender ?? ""
        if sender.isEmpty, let from = message.header.first("From"), let a = try AddressList.parse(from.unfoldedValue).first {
            sender = a.addrSpec
        }
        let settings = try configuration?.settings(forSender: sender, account: envelope?.account)
        // The sender's own certificate and key: options first, then the sender's settings.
        let certFile = signerCertificateFile ?? settings?.smimeCertificate
        let keyFile = signerKeyFile ?? settings?.smimeKey
        var signer: SMIMEEncryptor.Signer?
        let wantSign = sign ?? settings?.smimeSign ?? false
        let wantSelf = encryptToSelf ?? settings?.smimeEncryptToSelf ?? false
        if wantSign || wantSelf {
            guard let certFile, let keyFile else {
                throw UsageError("signing or encrypt-to-self needs the sender's certificate and key (--signer-certificate and --signer-key, or smime_certificate and smime_key)")
            }
            let cert = try Self.loadCertificate(certFile)
            if wantSelf { chosen.append(cert) }
            if wantSign {
                guard let data = FileManager.default.contents(atPath: keyFile) else { throw UsageError("cannot read the key file \(keyFile)") }
                let key = try PrivateKey(pem: Array(data))
                guard key.matches(cert) else { throw UsageError("\(keyFile) is not the key of \(certFile)") }
                signer = SMIMEEncryptor.Signer(certificate: cert, key: key)
            }
        }
        let outerSubject = settings?.protectedSubject ?? "[...]"
        guard let envelope else {
            return [try SMIMEEncryptor.encrypt(message, to: chosen, cipher: cipher, outerSubject: outerSubject, signer: signer)]
        }
        return try refusals.finish(message, envelope, hostname: hostname) { copy in
            [try SMIMEEncryptor.encrypt(copy, to: chosen, cipher: cipher, outerSubject: outerSubject, signer: signer)]
        }
    }

    static func loadCertificate(_ path: String) throws -> X509Certificate {
        try loadCertificates(path)[0]
    }

    /// Every certificate in a PEM bundle, or the one in a DER file.
    static func loadCertificates(_ path: String) throws -> [X509Certificate] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UsageError("cannot read the certificate file \(path)")
        }
        do { return try X509Certificate.all(derOrPEM: Array(data)) } catch {
            throw UsageError("\(path) is not a PEM or DER certificate")
        }
    }
}

extension ContentCipher {
    /// The cipher sl.conf's `smime_cipher` (or `--cipher`) names.
    init(_ named: SMIMECipher) {
        switch named {
        case .aes256CBC: self = .aes256CBC
        case .aes256GCM: self = .aes256GCM
        }
    }
}
