// Keys going into an address book: exported from a keyring by the same selection
// rules sl-encrypt-pgp applies, or read from a file or a web key directory and
// checked by GnuPG itself in a throwaway home (self-signatures, revocation,
// expiry, an encryption subkey), so the book never pins a key GnuPG would refuse.
internal import CGPGME
import SLMessage

/// Key data that holds no key usable for the address (exit 65: the data must change).
public struct KeyDataError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension GPGMEContext {
    /// The public key with `fingerprint`, as binary OpenPGP packets.
    func export(fingerprint: String) throws -> Bytes {
        let data = try export(pattern: fingerprint)
        guard !data.isEmpty else { throw PGPError("GnuPG exported nothing for key \(fingerprint)") }
        return data
    }

    /// The public keys gpg finds for `pattern`, as binary OpenPGP packets; empty when
    /// there are none.
    func export(pattern: String) throws -> Bytes {
        var h: gpgme_data_t?
        if let e = PGPError.check(gpgme_data_new(&h), "cannot make a GPGME buffer") { throw e }
        guard let h else { throw PGPError("cannot make a GPGME buffer") }
        gpgme_set_armor(ctx, 0)
        defer { gpgme_set_armor(ctx, 1) }
        let err = gpgme_op_export(ctx, pattern, 0, h)
        var size = 0
        let memory = gpgme_data_release_and_get_mem(h, &size)
        defer { gpgme_free(memory) }
        if let e = PGPError.check(err, "exporting key \(pattern) failed") { throw e }
        guard let memory, size > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: memory, count: size))
    }
}

extension PGPKeyring {
    /// The one key `key(for:)` selects for `address` (exact address, usable, fully
    /// valid: one key, or an error saying why not), exported as binary packets.
    public func exportKey(for address: String) throws -> (fingerprint: String, keyData: Bytes) {
        let selected = try key(for: address)
        return (selected.fingerprint, try context().export(fingerprint: selected.fingerprint))
    }

    /// The one key in `data` (binary or armored, one key or several) that GnuPG
    /// accepts and that has a live user ID with exactly `address`, exported by GnuPG
    /// as binary packets. Its validity is not asked: a key from outside has none,
    /// which is why the book pins it by fingerprint once the administrator confirms it.
    public static func vet(_ data: Bytes, for address: String, source: String) throws -> (fingerprint: String, keyData: Bytes) {
        let scratch = try ScratchHome(copying: nil)
        defer { scratch.remove() }
        let ring = try PGPKeyring(homeDirectory: scratch.path)
        let imported = try ring.importKeys(data)
        var keys: [PGPKey] = []
        for f in Set(imported).sorted() { keys += try ring.context().listKeys(f).filter { $0.fingerprint == f } }
        guard !keys.isEmpty else { throw KeyDataError("\(source) holds no OpenPGP public key GnuPG accepts") }
        var usable: [PGPKey] = []
        var reasons: [String] = []
        for k in keys {
            if let r = rejection(of: k, for: address, pinned: true) { reasons.append("key \(k.fingerprint): \(r)") } else { usable.append(k) }
        }
        if usable.isEmpty {
            throw KeyDataError("\(source) has no usable key for \(address): " + reasons.joined(separator: "; "))
        }
        guard usable.count == 1 else {
            throw KeyDataError("\(source) has \(usable.count) usable keys for \(address) (\(usable.map(\.fingerprint).joined(separator: ", "))); give a file with only the key the contact confirms")
        }
        return (usable[0].fingerprint, try ring.context().export(fingerprint: usable[0].fingerprint))
    }
}
