import ArgumentParser
import SLCommand
import SLMessage
import SLPolicy

/// sl-encrypt-smime: S/MIME 4.0 encryption through OpenSSL CMS. See sl-encrypt-smime(1).
@main
struct SLEncryptSMIME: ParsableCommand {
    static func main() { CommandMain.run(SLEncryptSMIME.self, tool: "sl-encrypt-smime") }

    static let configuration = CommandConfiguration(
        commandName: "sl-encrypt-smime",
        abstract: "Encrypt messages as S/MIME 4.0 with protected headers (RFC 9788).",
        discussion: """
        In a pipeline, encrypts the messages that sl-classify routed to S/MIME, to the \
        certificates their routing names, and passes every other message through \
        unchanged. With -r and --certificate, encrypts every message on stdin. \
        The content is encrypted with AES-256-CBC (EnvelopedData), which the usual \
        clients read, unless --cipher, smime_cipher in sl.conf or the recipient's \
        contact (X-SL-SMIME-GCM) asks for AES-256-GCM (AuthEnvelopedData). \
        See sl-encrypt-smime(1).
        """)

    @Option(name: .customShort("r"), help: ArgumentHelp("Encrypt every message to this recipient (repeatable; needs --certificate).", valueName: "address"))
    var recipients: [String] = []

    @Option(name: .customLong("certificate"), help: ArgumentHelp("A recipient certificate, PEM or DER (repeatable).", valueName: "file"))
    var certificates: [String] = []

    /// --cipher: the names of sl.conf's smime_cipher.
    enum Cipher: String, ExpressibleByArgument, CaseIterable {
        case aes256CBC = "aes256-cbc", aes256GCM = "aes256-gcm"
        var smime: SMIMECipher { self == .aes256GCM ? .aes256GCM : .aes256CBC }
        /// Any case, as in sl.conf.
        init?(argument: String) { self.init(rawValue: argument.lowercased()) }
    }

    @Option(name: .customLong("cipher"), help: ArgumentHelp("aes256-cbc or aes256-gcm (default: smime_cipher in sl.conf, else aes256-cbc); a contact's X-SL-SMIME-GCM wins over it.", valueName: "cipher"))
    var cipher: Cipher?

    @Option(name: .customLong("anchor"), help: ArgumentHelp("Also trust this CA certificate (repeatable).", valueName: "file"))
    var anchors: [String] = []

    @Flag(name: .customLong("system-cas"), inversion: .prefixedNo, help: "Trust the system CA bundle (default: smime_system_cas in sl.conf, else yes).")
    var systemCAs: Bool?

    @Flag(inversion: .prefixedNo, help: "Sign with the sender's certificate, then encrypt (default: smime_sign in sl.conf, else no).")
    var sign: Bool?

    @Flag(name: .customLong("encrypt-to-self"), inversion: .prefixedNo, help: "Also encrypt to the sender's certificate (default: smime_encrypt_to_self, else no).")
    var encryptToSelf: Bool?

    @Option(name: .customLong("signer-certificate"), help: ArgumentHelp("The sender's certificate (default: smime_certificate in sl.conf).", valueName: "file"))
    var signerCertificate: String?

    @Option(name: .customLong("signer-key"), help: ArgumentHelp("The sender's unencrypted PEM private key (default: smime_key).", valueName: "file"))
    var signerKey: String?

    @OptionGroup var config: ConfigurationOption

    @OptionGroup var input: MessageInput

    func run() throws {
        var tool = EncryptSMIMETool()
        tool.recipients = try recipients.map { r in
            do { return try EmailAddress(parsing: r).addrSpec } catch { throw UsageError("recipient \"\(r)\": \(error)") }
        }
        if !recipients.isEmpty && certificates.isEmpty { throw UsageError("-r needs at least one --certificate FILE") }
        if recipients.isEmpty && !certificates.isEmpty { throw UsageError("--certificate is for -r; in a pipeline the routing names the certificates") }
        tool.cipher = cipher?.smime
        tool.certificateFiles = certificates
        tool.anchorFiles = anchors
        tool.systemCAs = systemCAs
        tool.configurationPath = config.path
        tool.stream = input.stream
        tool.sign = sign
        tool.encryptToSelf = encryptToSelf
        tool.signerCertificateFile = signerCertificate
        tool.signerKeyFile = signerKey
        try tool.run()
    }
}
