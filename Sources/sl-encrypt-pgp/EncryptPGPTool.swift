import Foundation
import SLCommand
import SLMessage
import SLPGP
import SLPolicy

/// sl-encrypt-pgp without its argument parsing.
///
/// In a pipeline it encrypts the messages whose routing says `pgp`, to the keys the
/// routing names (imported from the address book, pinned by fingerprint), and passes
/// every other message through byte for byte. Alone (`-r`), it encrypts every
/// message to the named recipients' keys in the GnuPG home.
public struct EncryptPGPTool: Sendable {
    public var configurationPath: String?
    public var homeDirectory: String?
    public var recipients: [String] = []
    public var sign: Bool?
    public var signAs: String?
    public var encryptToSelf: Bool?
    public var hideRecipients = false
    public var stream = StreamOptions()
    /// Change nothing: keys are imported into a throwaway copy of the GnuPG home.
    public var dryRun = false

    public init() {}

    static let tool = "sl-encrypt-pgp"

    /// Messages encrypted at once. Default 1. Measured again with librnp (1,000 2 KB
    /// messages, 2 cores, release build): --jobs 2 took 0.30 s against 0.37 s, for
    /// 1.4 times the CPU (each worker selects and exports its keys again, and the
    /// temporary files double the system time). A gateway runs other work beside
    /// this, so one worker stays the default; a bulk run may ask for two.
    public var jobs = 1

    public func run() throws {
        let configuration = try ConfigurationLocation.loadIfPresent(configurationPath)
        let home = homeDirectory ?? configuration?.installation.effectivePGPHome
            ?? environmentValue("GNUPGHOME") ?? environmentValue("HOME").map { $0 + "/.gnupg" }
        // The keyrings are opened with the first message that needs one: a stream
        // with nothing for PGP (most of a gateway's) starts no gpg and needs no home.
        PGPKeyring.prepareProcess(home: dryRun ? nil : home)
        let keyrings = Keyrings(workers: max(1, jobs), home: home, dryRun: dryRun)
        defer { keyrings.close() }
        keyrings.warmUp(for: recipients)
        let workers = keyrings.count
        let books = configuration.map { BookShelf(books: $0.installation.books, defaultBook: $0.installation.defaultBook) }
        let filter = try StreamFilter(tool: Self.tool, options: stream)
        filter.bareOutputForBareInput = true
        let tool = self
        let hostname = configuration?.installation.hostname ?? localHostName()
        try filter.process(workers: workers) { message, worker in
            try tool.encrypt(message, keyring: { keyrings.keyring(worker) }, configuration: configuration, books: books, hostname: hostname)
        }
        try filter.commit()
    }

    func encrypt(_ message: Message, keyring openKeyring: () -> PGPKeyring, configuration: Configuration?, books: BookShelf?,
                 hostname: String) throws -> [Message] {
        // Alone (-r) the routing fields do not matter: the message is the user's own
        // and may carry any X-SL-* text; only a pipeline's routing is read.
        let envelope = recipients.isEmpty ? try Envelope.read(from: message.header) : nil
        var wanted: [(address: String, pin: String?, book: String?)]
        if !recipients.isEmpty {
            wanted = recipients.map { ($0, nil, nil) }
        } else if let envelope, envelope.method == .pgp {
            wanted = envelope.recipients.map { ($0.address, $0.parameter(.pgp), $0.parameter(.book)) }
        } else {
            return [message]            // not ours: byte for byte
        }
        if let kind = try EncryptionDetector.existingEncryption(of: message) {
            Diagnostics.warn(Self.tool, "message \(message.index) is already \(kind.rawValue) encrypted; passed on unchanged")
            return [message]
        }
        let keyring = openKeyring()
        let sender = try senderAddress(envelope, message)
        let settings = try configuration?.settings(forSender: sender, account: envelope?.account)
        var keys: [SelectedKey] = []
        // In a pipeline a recipient without a usable key is left out and reported
        // to the sender; alone (-r) it fails the run, as gpg would.
        var refusals = RecipientRefusals(warn: { Diagnostics.warn(Self.tool, $0) })
        let signing = sign ?? settings?.pgpSign ?? false
        // Signing and hidden recipients run through GnuPG, which must then hold the
        // book's keys too; otherwise a book's pinned key goes to librnp alone.
        let gnupgOnly = signing || hideRecipients
        for w in wanted {
            func select() throws -> SelectedKey {
                // A key the classifier found in an address book, pinned by the
                // fingerprint the routing carries.
                if let pin = w.pin, let bookName = w.book, let books,
                   let contact = try books.book(named: bookName)?.contact(for: w.address),
                   let ref = contact.pgpKeys.first(where: { $0.fingerprint.uppercased() == pin.uppercased() }) {
                    guard gnupgOnly else { return try keyring.bookKey(for: w.address, pinnedFingerprint: pin, keyData: ref.keyData) }
                    try keyring.importKey(fingerprint: ref.fingerprint, keyData: ref.keyData)
                }
                return try keyring.key(for: w.address, pinnedFingerprint: w.pin)
            }
            if envelope == nil {
                keys.append(try select())
            } else if let k = try refusals.attempt(w.address, select) {
                keys.append(k)
            }
        }
        var options = PGPMIMEOptions()
        options.outerSubject = settings?.protectedSubject ?? "[...]"
        options.hideRecipients = hideRecipients
        if signing {
            guard let signer = signAs ?? (sender.isEmpty ? nil : sender) else {
                throw UsageError("message \(message.index) has no sender to sign for; give --sign-as ADDRESS")
            }
            options.signer = try keyring.signingKey(for: signer)
        }
        if encryptToSelf ?? settings?.pgpEncryptToSelf ?? false, !sender.isEmpty {
            let own = try keyring.key(for: sender)
            if !keys.contains(where: { $0.fingerprint == own.fingerprint }) { keys.append(own) }
        }
        guard let envelope else { return [try PGPMIMEEncryptor(keyring: keyring).encrypt(message, to: keys, options: options)] }
        return try refusals.finish(message, envelope, hostname: hostname) { copy in
            [try PGPMIMEEncryptor(keyring: keyring).encrypt(copy, to: keys, options: options)]
        }
    }

    /// The envelope sender from the routing, else the first From: address.
    func senderAddress(_ envelope: Envelope?, _ message: Message) throws -> String {
        if let envelope { return envelope.sender }
        if let from = message.header.first("From"), let a = try AddressList.parse(from.unfoldedValue).first { return a.addrSpec }
        return ""
    }
}

/// One keyring per worker (a GPGME context and its librnp keyring are not shared
/// between threads), made when a worker first needs one. Making one starts nothing:
/// GnuPG is started (and its home looked for) only when a keyring key is asked for,
/// so a stream with nothing for PGP, or only address-book keys, runs no gpg. A dry
/// run uses a throwaway copy of the home: importing the address books' keys is the
/// one change a run makes there.
final class Keyrings: @unchecked Sendable {
    let count: Int
    private let home: String?
    private let dryRun: Bool
    private let lock = NSLock()
    private var opened: [Int: PGPKeyring] = [:]
    private var scratch: ScratchHome?
    /// Worker 0's keyring while it selects keys ahead of the first message.
    private var warming: DispatchSemaphore?

    init(workers: Int, home: String?, dryRun: Bool) {
        count = workers; self.home = home; self.dryRun = dryRun
    }

    func keyring(_ worker: Int) -> PGPKeyring {
        if worker == 0, let warming { warming.wait(); warming.signal() }
        lock.lock(); defer { lock.unlock() }
        if let k = opened[worker] { return k }
        // Weakly: the keyring lives in `opened`, and a strong capture made a cycle
        // that kept every worker's GPGME context and librnp keyring alive past the
        // run (LeakSanitizer). Keyrings outlives its keyrings' use.
        let k = PGPKeyring(locatingHome: { [weak self] in
            guard let self else { throw PGPHomeError(description: "internal error: the keyrings were closed") }
            return try self.homePath()
        })
        opened[worker] = k
        return k
    }

    /// Selects the keys of `recipients` (sl-encrypt-pgp -r) on another thread while
    /// the first message is read: gpg lists and exports them meanwhile. A failure is
    /// not kept; the message's own selection meets it again and reports it.
    func warmUp(for recipients: [String]) {
        guard !recipients.isEmpty else { return }
        PGPKeyring.preloadLibrnp()
        let ring = keyring(0)
        let done = DispatchSemaphore(value: 0)
        warming = done
        Thread {
            for r in recipients { _ = try? ring.key(for: r) }
            done.signal()
        }.start()
    }

    private func homePath() throws -> String {
        lock.lock(); defer { lock.unlock() }
        guard let home else {
            throw PGPHomeError(description: "no GnuPG home: there is no HOME (as under Postfix pipe(8) and cron); set pgp_homedir or state_directory in sl.conf, or GNUPGHOME")
        }
        guard dryRun else { return home }
        if scratch == nil { scratch = try ScratchHome(copying: home) }
        return scratch!.path
    }

    /// Stops the throwaway home's agent and removes it.
    func close() { scratch?.remove() }
}
