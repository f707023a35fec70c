import Foundation
import SLMessage

/// Why a key cannot be used for a recipient.
public enum KeyRejection: Equatable, Sendable, CustomStringConvertible {
    case revoked, expired, disabled, invalid
    case noEncryptionSubkey
    /// No user ID of the key has exactly the recipient's address (gpg's own match is
    /// a substring match: "bob@example.org" also finds "jacob@example.org.evil").
    case addressMismatch
    /// The matching user IDs are all revoked or invalid.
    case userIDRevoked
    /// The matching user ID is not fully valid in this keyring and no fingerprint is
    /// pinned for the recipient.
    case validity(PGPKey.Validity)

    public var description: String {
        switch self {
        case .revoked: return "revoked"
        case .expired: return "expired"
        case .disabled: return "disabled"
        case .invalid: return "invalid"
        case .noEncryptionSubkey: return "no usable encryption subkey"
        case .addressMismatch: return "no user ID with exactly this address"
        case .userIDRevoked: return "the user ID with this address is revoked"
        case .validity(let v): return "validity \(v) (needs full, or a fingerprint pinned in the address book)"
        }
    }
}

/// A recipient that cannot be encrypted to, and why. Exit 69: the message cannot go
/// to that recipient by PGP until the keyring or address book changes.
public struct RecipientKeyError: Error, CustomStringConvertible, Equatable {
    public let recipient: String
    public let problem: String
    public var description: String { "\(recipient): \(problem)" }
}

/// A key chosen for a recipient, and whether it was pinned (which is what allows
/// encrypting to a key whose validity gpg does not know).
public struct SelectedKey: Sendable {
    public let fingerprint: String
    public let pinned: Bool
    /// The key as GnuPG listed it; nil for a key taken from an address book and
    /// checked by librnp alone, which only librnp can encrypt to.
    public let gnupgKey: PGPKey?
}

/// A GnuPG keyring (home directory) and the key-selection rules a reviewer signs off:
/// exact address, not revoked/expired/disabled/invalid, able to encrypt, and fully
/// valid or pinned. Exactly one usable key per recipient.
///
/// GnuPG is started only when a keyring key is asked for: keys pinned in address
/// books are checked and used by librnp alone (`bookKey`), so a run whose PGP
/// recipients all come from books starts no gpg process.
public final class PGPKeyring: @unchecked Sendable {   // use one per thread
    private let locateHome: () throws -> String?
    private var gnupg: GPGMEContext?
    /// A second context, so that a key's export runs while the first lists it.
    private var exporter: GPGMEContext?
    /// The selected public keys, for encrypting in process (RNPKeyring.swift).
    private var bulk: RNPKeyring?
    /// How many keyring keys this keyring exported from GnuPG into librnp: once per
    /// key per run, however many messages go to it.
    public internal(set) var exportsToRNP = 0
    /// Keys chosen and keys imported during this run. Every GPGME key listing or
    /// import starts a gpg process; a bulk run to the same recipients must not pay
    /// that per message. (A keyring is used by one thread only.)
    private var chosen: [String: SelectedKey] = [:]
    private var importedFingerprints = Set<String>()
    private var signers: [String: PGPKey] = [:]

    /// A keyring over the GnuPG home at `homeDirectory` (nil: GnuPG's own default).
    public convenience init(homeDirectory: String?) throws {
        self.init(locatingHome: { homeDirectory })
    }

    /// A keyring whose GnuPG home is found (and made) only when GnuPG is first
    /// needed; `locatingHome` throws when there is none to use.
    public init(locatingHome: @escaping () throws -> String?) {
        locateHome = locatingHome
    }

    /// Process-wide settings that make each run cheaper; call once, before any
    /// other thread starts (they set environment variables). With `home`, gpg finds
    /// the home through GNUPGHOME, which spares GPGME a second `gpg --version` per
    /// run (it runs one for every context given a home of its own).
    public static func prepareProcess(home: String?) {
        RNPKeyring.skipMemoryLockPool()
        if let home { setenv("GNUPGHOME", home, 1) }
    }

    /// Starts loading librnp on another thread, for a run sure to encrypt (one given
    /// its recipients): the load then overlaps gpg's key selection.
    public static func preloadLibrnp() { RNPLibrary.preload() }

    /// The GPGME context over the home, opened (and the home made) the first time.
    func context() throws -> GPGMEContext {
        if let gnupg { return gnupg }
        let c = try openContext()
        gnupg = c
        return c
    }

    private func openContext() throws -> GPGMEContext {
        let home = try locateHome()
        if let home { try Self.prepareHome(home) }
        return try GPGMEContext(homeDirectory: home)
    }

    private func bulkKeyring() throws -> RNPKeyring {
        if let bulk { return bulk }
        let r = try RNPKeyring()
        bulk = r
        return r
    }

    /// A GnuPG home that does not exist yet is made (mode 0700, as gpg makes its
    /// own): gpg would otherwise import a pinned key into nowhere and then say the
    /// key is not in the keyring. Its parent must exist; a path that is not a
    /// directory is an error that says so.
    static func prepareHome(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw PGPHomeError(description: "the GnuPG home \(path) is not a directory") }
            return
        }
        guard mkdir(path, 0o700) == 0 || errno == EEXIST else {
            throw PGPHomeError(description: "the GnuPG home \(path) does not exist and cannot be made: \(String(cString: strerror(errno))) (set pgp_homedir or GNUPGHOME)")
        }
    }

    /// Imports keys (for example from an address book) into the GnuPG keyring.
    @discardableResult
    public func importKeys(_ bytes: Bytes) throws -> [String] { try context().importKeys(bytes) }

    /// Why `key` cannot be used for `address`, or nil when it can.
    public static func rejection(of key: PGPKey, for address: String, pinned: Bool) -> KeyRejection? {
        if key.isRevoked { return .revoked }
        if key.isExpired { return .expired }
        if key.isDisabled { return .disabled }
        if key.isInvalid { return .invalid }
        if !key.canEncrypt { return .noEncryptionSubkey }
        let wanted = address.lowercased()
        let matching = key.userIDs.filter { $0.address.lowercased() == wanted }
        if matching.isEmpty { return .addressMismatch }
        let live = matching.filter { !$0.isRevoked && !$0.isInvalid }
        if live.isEmpty { return .userIDRevoked }
        if !pinned {
            let best = live.map(\.validity).max() ?? .unknown
            if best < .full { return .validity(best) }
        }
        return nil
    }

    /// The same rules for a key librnp holds: an address-book key, pinned by the
    /// book's fingerprint, which no GnuPG keyring has vouched for.
    static func rejection(of key: RNPKeyFacts, for address: String) -> KeyRejection? {
        if key.isRevoked { return .revoked }
        if key.isExpired { return .expired }
        if !key.isValid { return .invalid }
        if key.encryptionKey == nil { return .noEncryptionSubkey }
        let wanted = address.lowercased()
        let matching = key.userIDs.filter { UserIDText.address(of: $0.text)?.lowercased() == wanted }
        if matching.isEmpty { return .addressMismatch }
        if !matching.contains(where: { !$0.isRevoked && $0.isValid }) { return .userIDRevoked }
        return nil
    }

    /// The one usable key for `address`. With `pinnedFingerprint`, only that key is
    /// considered, and its validity in this keyring does not matter (the pin is the
    /// administrator's statement that it is the right key).
    public func key(for address: String, pinnedFingerprint: String? = nil) throws -> SelectedKey {
        let cacheKey = address.lowercased() + "|" + (pinnedFingerprint?.uppercased() ?? "")
        if let k = chosen[cacheKey] { return k }
        let k = try selectKey(for: address, pinnedFingerprint: pinnedFingerprint)
        chosen[cacheKey] = k
        return k
    }

    /// The key an address book pins for `address`, taken from the book's key data
    /// and checked by librnp alone: the pinned fingerprint, not revoked or expired,
    /// valid self-signatures, a usable encryption subkey, a live user ID with exactly
    /// this address. No GnuPG process. Only librnp can encrypt to it (no signing or
    /// hidden recipients; those import the key into GnuPG instead).
    public func bookKey(for address: String, pinnedFingerprint pin: String, keyData: Bytes) throws -> SelectedKey {
        let cacheKey = "book|" + address.lowercased() + "|" + pin.uppercased()
        if let k = chosen[cacheKey] { return k }
        let ring = try bulkKeyring()
        do {
            try ring.importPublicKeys(keyData, source: "the address book's key data")
        } catch let e as PGPError {
            // The book's data, not the run, is at fault: that recipient's refusal.
            throw RecipientKeyError(recipient: address, problem: e.description)
        }
        guard let facts = try ring.facts(fingerprint: pin) else {
            throw RecipientKeyError(recipient: address, problem: "the address book's key data holds no key \(pin.uppercased())")
        }
        if let r = Self.rejection(of: facts, for: address) {
            throw RecipientKeyError(recipient: address, problem: "no usable PGP key: key \(facts.fingerprint) \(r)")
        }
        let k = SelectedKey(fingerprint: facts.fingerprint, pinned: true, gnupgKey: nil)
        chosen[cacheKey] = k
        return k
    }

    /// Imports a key into the GnuPG keyring once per run, keyed by its fingerprint.
    public func importKey(fingerprint: String, keyData: Bytes) throws {
        let f = fingerprint.uppercased()
        guard !importedFingerprints.contains(f) else { return }
        try importKeys(keyData)
        importedFingerprints.insert(f)
    }

    func selectKey(for address: String, pinnedFingerprint: String?) throws -> SelectedKey {
        let pin = pinnedFingerprint?.uppercased()
        let context = try context()
        // "<addr>" asks gpg for an exact e-mail match; we check again ourselves.
        let pattern = pin ?? "<\(address)>"
        // The candidates' key data is exported while gpg lists them: two gpg
        // processes at once rather than one after the other, on a run's critical path.
        let export = try startExport(pattern)
        let listed = Result { try context.listKeys(pattern) }
        // Waited for whatever the listing did: the exporter's context is used by one
        // thread at a time, and the next recipient's export uses it again.
        let keyData = try export.wait()
        var candidates = try listed.get()
        if let pin {
            candidates = candidates.filter { $0.fingerprint.uppercased() == pin }
            guard !candidates.isEmpty else {
                throw RecipientKeyError(recipient: address, problem: "the pinned key \(pin) is not in the keyring")
            }
        }
        guard !candidates.isEmpty else {
            throw RecipientKeyError(recipient: address, problem: "no PGP key for this address in the keyring")
        }
        var usable: [PGPKey] = []
        var reasons: [String] = []
        for k in candidates {
            if let r = Self.rejection(of: k, for: address, pinned: pin != nil) {
                reasons.append("key \(k.fingerprint) \(r)")
            } else {
                usable.append(k)
            }
        }
        if usable.isEmpty {
            throw RecipientKeyError(recipient: address, problem: "no usable PGP key: " + reasons.joined(separator: "; "))
        }
        guard usable.count == 1 else {
            throw RecipientKeyError(recipient: address, problem: "\(usable.count) usable PGP keys (\(usable.map(\.fingerprint).joined(separator: ", "))); pin one with X-SL-PGP-FINGERPRINT in the address book")
        }
        let key = usable[0]
        try checkWithLibrnp(key, exported: keyData, for: address)
        return SelectedKey(fingerprint: key.fingerprint, pinned: pin != nil, gnupgKey: key)
    }

    /// Puts GnuPG's chosen key into librnp and makes sure librnp would encrypt to a
    /// subkey GnuPG calls usable: a key librnp cannot use (an algorithm it lacks, a
    /// signature it rejects) is that recipient's refusal, not a failed message.
    func checkWithLibrnp(_ key: PGPKey, exported: Bytes, for address: String) throws {
        let ring = try bulkKeyring()
        try ring.importPublicKeys(exported, source: "key \(key.fingerprint) as GnuPG exported it")
        exportsToRNP += 1
        guard let facts = try ring.facts(fingerprint: key.fingerprint) else {
            throw RecipientKeyError(recipient: address, problem: "GnuPG did not export key \(key.fingerprint)")
        }
        guard let subkey = facts.encryptionKey else {
            throw RecipientKeyError(recipient: address, problem: "librnp finds no usable encryption subkey in key \(key.fingerprint)")
        }
        guard key.encryptionKeys.contains(subkey) else {
            throw RecipientKeyError(recipient: address, problem: "librnp would encrypt to subkey \(subkey) of key \(key.fingerprint), which GnuPG does not count usable")
        }
    }

    /// Exports the keys `pattern` names on a second GPGME context, on another thread.
    private func startExport(_ pattern: String) throws -> PendingExport {
        let exporter = try self.exporter ?? openContext()
        self.exporter = exporter
        return PendingExport(context: exporter, pattern: pattern)
    }
}

/// A key export running on its own thread; `wait` returns its key data.
private final class PendingExport: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<Bytes, Error> = .success([])

    init(context: GPGMEContext, pattern: String) {
        // The context is the keyring's exporter, used by this thread alone until
        // `wait` returns.
        nonisolated(unsafe) let exporter = context
        let thread = Thread { [self] in
            result = Result { try exporter.export(pattern: pattern) }
            done.signal()
        }
        thread.start()
    }

    func wait() throws -> Bytes {
        done.wait()
        return try result.get()
    }
}

/// The address in a user ID as gpg reads it: what is inside the last <...>, or the
/// whole user ID when it is a bare address.
enum UserIDText {
    static func address(of userID: String) -> String? {
        if let close = userID.lastIndex(of: ">"), let open = userID[..<close].lastIndex(of: "<") {
            let inner = userID[userID.index(after: open)..<close]
            return inner.contains("@") ? String(inner) : nil
        }
        let bare = userID.trimmingCharacters(in: .whitespaces)
        return bare.contains("@") && !bare.contains(" ") ? bare : nil
    }
}

extension PGPKeyring {
    /// Encrypts the bytes readable from `input` (a file descriptor at offset 0) to the
    /// selected keys, optionally signing with `signers` (secret keys in this keyring),
    /// and writes ASCII-armored OpenPGP to `output`. Both stay owned by the caller;
    /// data streams, never whole in memory.
    ///
    /// librnp encrypts, in process, to the keys as they were selected: GnuPG's
    /// choice, exported once per key per run, or an address book's key. Two cases stay
    /// with GnuPG: signing, because the secret key lives with gpg-agent, and hidden
    /// recipients, because librnp 0.16 cannot write wildcard key IDs (rnp.h has no
    /// such option); both need keys GnuPG selected.
    public func encrypt(input: Int32, output: Int32, to recipients: [SelectedKey], signers: [PGPKey] = [],
                        hideRecipients: Bool = false) throws {
        guard signers.isEmpty, !hideRecipients else {
            let keys = recipients.compactMap(\.gnupgKey)
            precondition(keys.count == recipients.count, "signing or hiding recipients needs keys GnuPG selected")
            let plain = try GPGMEData(fd: input)
            let cipher = try GPGMEData(fd: output)
            // Every key was checked by key(for:): full validity, or pinned. GnuPG's own
            // trust check would refuse a pinned key of unknown validity, so it is skipped
            // only when every key passed ours.
            try context().encrypt(recipients: keys, signers: signers, input: plain, output: cipher,
                                  trustedByCaller: true, hideRecipients: hideRecipients)
            return
        }
        try bulkKeyring().encrypt(input: input, output: output, to: recipients.map(\.fingerprint))
    }

    /// The secret key to sign with for `address`: exact address, usable, and present
    /// as a secret key in this keyring.
    public func signingKey(for address: String) throws -> PGPKey {
        if let k = signers[address.lowercased()] { return k }
        let k = try findSigningKey(for: address)
        signers[address.lowercased()] = k
        return k
    }

    func findSigningKey(for address: String) throws -> PGPKey {
        let keys = try context().listKeys("<\(address)>", secret: true).filter { k in
            !k.isRevoked && !k.isExpired && !k.isDisabled && !k.isInvalid
                && k.userIDs.contains { $0.address.lowercased() == address.lowercased() && !$0.isRevoked }
        }
        guard keys.count == 1 else {
            throw RecipientKeyError(recipient: address, problem: keys.isEmpty
                ? "no usable secret key to sign with" : "\(keys.count) secret keys to sign with; name one in the configuration")
        }
        return keys[0]
    }
}

extension RecipientKeyError: RecipientRefusal {
    public var refusedRecipient: String { recipient }
    public var refusalReason: String { "no usable PGP key: \(problem)" }
    public var refusalStatus: EnhancedStatus { .cryptographicFailure }
}

/// The GnuPG home is unusable: a configuration problem (exit 78).
public struct PGPHomeError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}
