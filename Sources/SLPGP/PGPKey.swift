internal import CGPGME

/// A public key as GnuPG sees it. Owns a reference to the `gpgme_key_t`; the public
/// properties are copied out so callers never touch GPGME memory.
public final class PGPKey: @unchecked Sendable {
    let handle: gpgme_key_t

    public let fingerprint: String
    public let isRevoked: Bool
    public let isExpired: Bool
    public let isDisabled: Bool
    public let isInvalid: Bool
    /// The key has a usable (not revoked, expired, disabled or invalid) encryption subkey.
    public let canEncrypt: Bool
    /// Fingerprints of the keys (subkeys, or the primary) GnuPG would encrypt to:
    /// able to encrypt and not revoked, expired, disabled or invalid.
    public let encryptionKeys: [String]
    public let userIDs: [UserID]

    public struct UserID: Sendable, Equatable {
        /// The address part of the user ID, as gpg parsed it (may be empty).
        public let address: String
        public let isRevoked: Bool
        public let isInvalid: Bool
        public let validity: Validity
    }

    /// GnuPG's validity of a user ID (gpgme_validity_t).
    public enum Validity: Int, Sendable, Comparable {
        case unknown = 0, undefined, never, marginal, full, ultimate
        public static func < (a: Validity, b: Validity) -> Bool { a.rawValue < b.rawValue }
    }

    /// Takes over the reference `key` (as returned by keylist_next).
    init(taking key: gpgme_key_t) {
        handle = key
        let k = key.pointee
        fingerprint = k.fpr.map { String(cString: $0) } ?? ""
        isRevoked = k.revoked != 0
        isExpired = k.expired != 0
        isDisabled = k.disabled != 0
        isInvalid = k.invalid != 0
        var encrypting: [String] = []
        var sub = k.subkeys
        while let s = sub {
            let p = s.pointee
            if p.can_encrypt != 0 && p.revoked == 0 && p.expired == 0 && p.disabled == 0 && p.invalid == 0 {
                encrypting.append(p.fpr.map { String(cString: $0).uppercased() } ?? "")
            }
            sub = p.next
        }
        encryptionKeys = encrypting
        canEncrypt = !encrypting.isEmpty && k.can_encrypt != 0
        var uids: [UserID] = []
        var u = k.uids
        while let uid = u {
            let p = uid.pointee
            uids.append(UserID(address: p.address.map { String(cString: $0) } ?? "",
                               isRevoked: p.revoked != 0, isInvalid: p.invalid != 0,
                               validity: Validity(rawValue: Int(p.validity.rawValue)) ?? .unknown))
            u = p.next
        }
        userIDs = uids
    }

    deinit { gpgme_key_unref(handle) }
}
