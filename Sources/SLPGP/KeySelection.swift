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
    public let key: PGPKey
    public let pinned: Bool
}

/// A GnuPG keyring (home directory) and the key-selection rules a reviewer signs off:
/// exact address, not revoked/expired/disabled/invalid, able to encrypt, and fully
/// valid or pinned. Exactly one usable key per recipient.
public final class PGPKeyring: @unchecked Sendable {   // use one per thread
    let context: GPGMEContext
    /// The selected public keys, exported from GnuPG once each, for encrypting in
    /// process (RNPKeyring.swift). Opened with the first message that needs it.
    var bulk: RNPKeyring?
    /// How many keys this keyring exported from GnuPG into librnp: once per key per
    /// run, however many messages go to it.
    public internal(set) var exportsToRNP = 0
    public let homeDirectory: String?
    /// Keys chosen and keys imported during this run. Every GPGME key listing or
    /// import starts a gpg process; a bulk run to the same recipients must not pay
    /// that per message. (A keyring is used by one thread only.)
    private var chosen: [String: SelectedKey] = [:]
    private var importedFingerprints = Set<String>()
    private var signers: [String: PGPKey] = [:]

    public init(homeDirectory: String?) throws {
        self.homeDirectory = homeDirectory
        if let homeDirectory { try Self.prepareHome(homeDirectory) }
        context = try GPGMEContext(homeDirectory: homeDirectory)
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

    /// Imports keys (for example from an address book) into this keyring.
    @discardableResult
    public func importKeys(_ bytes: Bytes) throws -> [String] { try context.importKeys(bytes) }

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

    /// Imports a key once per run, keyed by its fingerprint.
    public func importKey(fingerprint: String, keyData: Bytes) throws {
        let f = fingerprint.uppercased()
        guard !importedFingerprints.contains(f) else { return }
        try importKeys(keyData)
        importedFingerprints.insert(f)
    }

    func selectKey(for address: String, pinnedFingerprint: String?) throws -> SelectedKey {
        let pin = pinnedFingerprint?.uppercased()
        // "<addr>" asks gpg for an exact e-mail match; we check again ourselves.
        var candidates = try context.listKeys("<\(address)>")
        if let pin {
            candidates = try context.listKeys(pin).filter { $0.fingerprint.uppercased() == pin }
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
        if usable.count == 1 { return SelectedKey(key: usable[0], pinned: pin != nil) }
        if usable.isEmpty {
            throw RecipientKeyError(recipient: address, problem: "no usable PGP key: " + reasons.joined(separator: "; "))
        }
        throw RecipientKeyError(recipient: address, problem: "\(usable.count) usable PGP keys (\(usable.map(\.fingerprint).joined(separator: ", "))); pin one with X-SL-PGP-FINGERPRINT in the address book")
    }
}

extension PGPKeyring {
    /// Encrypts the bytes readable from `input` (a file descriptor at offset 0) to the
    /// selected keys, optionally signing with `signers` (secret keys in this keyring),
    /// and writes ASCII-armored OpenPGP to `output`. Both stay owned by the caller;
    /// data streams, never whole in memory.
    ///
    /// GnuPG chose the keys; librnp encrypts, in process, to those keys as GnuPG
    /// exported them (once per key per run). Two cases stay with GnuPG: signing,
    /// because the secret key lives with gpg-agent, and hidden recipients, because
    /// librnp 0.16 cannot write wildcard key IDs (rnp.h has no such option).
    public func encrypt(input: Int32, output: Int32, to recipients: [SelectedKey], signers: [PGPKey] = [],
                        hideRecipients: Bool = false) throws {
        guard signers.isEmpty, !hideRecipients else {
            let plain = try GPGMEData(fd: input)
            let cipher = try GPGMEData(fd: output)
            // Every key was checked by key(for:): full validity, or pinned. GnuPG's own
            // trust check would refuse a pinned key of unknown validity, so it is skipped
            // only when every key passed ours.
            try context.encrypt(recipients: recipients.map(\.key), signers: signers, input: plain, output: cipher,
                                trustedByCaller: true, hideRecipients: hideRecipients)
            return
        }
        let ring = try bulkKeyring()
        for r in recipients where !ring.contains(fingerprint: r.key.fingerprint) {
            try ring.importPublicKey(fingerprint: r.key.fingerprint, keyData: try context.export(fingerprint: r.key.fingerprint))
            exportsToRNP += 1
        }
        try ring.encrypt(input: input, output: output, to: recipients.map(\.key.fingerprint))
    }

    private func bulkKeyring() throws -> RNPKeyring {
        if let bulk { return bulk }
        let r = try RNPKeyring()
        bulk = r
        return r
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
        let keys = try context.listKeys("<\(address)>", secret: true).filter { k in
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
