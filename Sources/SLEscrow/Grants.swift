internal import CSodium
import Foundation

/// The key of one opened message, as `EscrowStore.unlock` hands it out after the
/// link and the answer, password or account proved who is asking. Whoever holds it
/// reads the message (`EscrowStore.read`) without another Argon2id derivation: the
/// portal keeps it for a session, sealed under a key only the visitor's cookie has.
public struct ContentKey: Sendable {
    public let id: String
    /// The recipient it was opened for; nil for the sender (message center).
    public let index: Int?
    let key: SecretBytes
}

/// An escrow account unlocked with its password: its address and key pair. Opens
/// every message sealed for the account without the password again.
public struct AccountKey: Sendable {
    /// Lowercased, as the store keeps it.
    public let address: String
    let publicKey: [UInt8]
    let secretKey: SecretBytes
}

/// What a portal session grants, sealed for keeping on the server under a fresh
/// random key that goes to the visitor's cookie and nowhere else: what the server
/// holds opens nothing without the cookie, and a stolen cookie without the server's
/// table opens nothing either.
public enum SessionGrant: Sendable {
    case message(ContentKey)
    case account(AccountKey)

    /// The sealed grant and the key that opens it (base64url, 43 characters).
    public func sealed() -> (cookieKey: String, box: SealedGrant) {
        let key = SecretBytes.random(Wrap.keyBytes)
        let plain = serialized()
        let (nonce, ciphertext) = Wrap.seal(plain, key: key, ad: Array(Self.context.utf8))
        return (Sodium.base64url(key), SealedGrant(nonce: nonce, ciphertext: ciphertext))
    }

    /// The grant again; nil when the cookie's key is not the one it was sealed under.
    public static func open(_ box: SealedGrant, cookieKey: String) -> SessionGrant? {
        guard let key = Sodium.fromBase64url(cookieKey, count: Wrap.keyBytes),
              let plain = Wrap.open(box.ciphertext, nonce: box.nonce, key: key, ad: Array(context.utf8)) else { return nil }
        return parse(plain)
    }

    static let context = "sl-portal session v1"

    // Layout: 1, index (Int32 big-endian, -1 for the sender), id (32 ASCII), key (32);
    // or 2, public key (32), secret key (32), address (UTF-8, the rest).
    private func serialized() -> SecretBytes {
        switch self {
        case .message(let m):
            let idBytes = Array(m.id.utf8)
            let out = SecretBytes(count: 1 + 4 + idBytes.count + m.key.count)
            out.withUnsafeMutableBytes { b in
                b[0] = 1
                let index = UInt32(bitPattern: Int32(m.index ?? -1))
                for i in 0..<4 { b[1 + i] = UInt8(truncatingIfNeeded: index >> (24 - 8 * UInt32(i))) }
                for (i, c) in idBytes.enumerated() { b[5 + i] = c }
                m.key.withUnsafeBytes { k in for i in 0..<k.count { b[5 + idBytes.count + i] = k[i] } }
            }
            return out
        case .account(let a):
            let address = Array(a.address.utf8)
            let out = SecretBytes(count: 1 + a.publicKey.count + a.secretKey.count + address.count)
            out.withUnsafeMutableBytes { b in
                b[0] = 2
                for (i, c) in a.publicKey.enumerated() { b[1 + i] = c }
                a.secretKey.withUnsafeBytes { k in for i in 0..<k.count { b[1 + a.publicKey.count + i] = k[i] } }
                for (i, c) in address.enumerated() { b[1 + a.publicKey.count + a.secretKey.count + i] = c }
            }
            return out
        }
    }

    private static func parse(_ plain: SecretBytes) -> SessionGrant? {
        plain.withUnsafeBytes { b -> SessionGrant? in
            guard b.count > 1 else { return nil }
            switch b[0] {
            case 1 where b.count == 1 + 4 + 32 + Wrap.keyBytes:
                var index: UInt32 = 0
                for i in 0..<4 { index = index << 8 | UInt32(b[1 + i]) }
                let signed = Int(Int32(bitPattern: index))
                let id = String(decoding: b[5..<37], as: UTF8.self)
                let key = SecretBytes(count: Wrap.keyBytes)
                key.withUnsafeMutableBytes { k in for i in 0..<k.count { k[i] = b[37 + i] } }
                return .message(ContentKey(id: id, index: signed < 0 ? nil : signed, key: key))
            case 2 where b.count > 1 + 64:
                let publicKey = Array(b[1..<33])
                let secretKey = SecretBytes(count: 32)
                secretKey.withUnsafeMutableBytes { k in for i in 0..<32 { k[i] = b[33 + i] } }
                let address = String(decoding: b[65...], as: UTF8.self)
                return .account(AccountKey(address: address, publicKey: publicKey, secretKey: secretKey))
            default:
                return nil
            }
        }
    }
}

/// A session grant as the server keeps it: ciphertext only.
public struct SealedGrant: Sendable {
    let nonce: [UInt8]
    let ciphertext: [UInt8]
}
