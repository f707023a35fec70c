internal import CSodium

/// The small wrapping primitives the store uses: AEAD for key wraps, sealed boxes for
/// accounts, secretbox for an account's private key. Plaintext keys come and go in
/// SecretBytes; only ciphertext lands in arrays.
enum Wrap {
    static let keyBytes = Int(crypto_aead_xchacha20poly1305_ietf_KEYBYTES)
    static let nonceBytes = Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)

    /// XChaCha20-Poly1305 of `secret` under `key`, with a random nonce.
    static func seal(_ secret: SecretBytes, key: SecretBytes, ad: [UInt8]) -> (nonce: [UInt8], ciphertext: [UInt8]) {
        precondition(key.count == keyBytes)
        let nonce = Sodium.randomBytes(nonceBytes)
        var out = [UInt8](repeating: 0, count: secret.count + Int(crypto_aead_xchacha20poly1305_ietf_ABYTES))
        var length: UInt64 = 0
        _ = crypto_aead_xchacha20poly1305_ietf_encrypt(&out, &length, secret.uint8, UInt64(secret.count),
                                                       ad, UInt64(ad.count), nil, nonce, key.uint8)
        return (nonce, Array(out[0..<Int(length)]))
    }

    /// The secret again, nil when the key is wrong or the ciphertext was altered.
    static func open(_ ciphertext: [UInt8], nonce: [UInt8], key: SecretBytes, ad: [UInt8]) -> SecretBytes? {
        let abytes = Int(crypto_aead_xchacha20poly1305_ietf_ABYTES)
        guard key.count == keyBytes, nonce.count == nonceBytes, ciphertext.count >= abytes else { return nil }
        let out = SecretBytes(count: ciphertext.count - abytes)
        var length: UInt64 = 0
        let rc = crypto_aead_xchacha20poly1305_ietf_decrypt(out.mutableUInt8, &length, nil, ciphertext,
                                                            UInt64(ciphertext.count), ad, UInt64(ad.count), nonce, key.uint8)
        return rc == 0 ? out : nil
    }

    /// crypto_box_seal: anyone with the public key can wrap, only the account can open.
    static func boxSeal(_ message: [UInt8], publicKey: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: message.count + Int(crypto_box_sealbytes()))
        _ = crypto_box_seal(&out, message, UInt64(message.count), publicKey)
        return out
    }

    static func boxSeal(_ secret: SecretBytes, publicKey: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: secret.count + Int(crypto_box_sealbytes()))
        _ = crypto_box_seal(&out, secret.uint8, UInt64(secret.count), publicKey)
        return out
    }

    static func boxSealOpen(_ ciphertext: [UInt8], publicKey: [UInt8], secretKey: SecretBytes) -> SecretBytes? {
        let sealBytes = Int(crypto_box_sealbytes())
        guard ciphertext.count >= sealBytes, publicKey.count == Int(crypto_box_PUBLICKEYBYTES) else { return nil }
        let out = SecretBytes(count: ciphertext.count - sealBytes)
        let rc = crypto_box_seal_open(out.mutableUInt8, ciphertext, UInt64(ciphertext.count), publicKey, secretKey.uint8)
        return rc == 0 ? out : nil
    }

    static func secretbox(_ secret: SecretBytes, key: SecretBytes) -> (nonce: [UInt8], ciphertext: [UInt8]) {
        let nonce = Sodium.randomBytes(Int(crypto_secretbox_NONCEBYTES))
        var out = [UInt8](repeating: 0, count: secret.count + Int(crypto_secretbox_MACBYTES))
        _ = crypto_secretbox_easy(&out, secret.uint8, UInt64(secret.count), nonce, key.uint8)
        return (nonce, out)
    }

    static func secretboxOpen(_ ciphertext: [UInt8], nonce: [UInt8], key: SecretBytes) -> SecretBytes? {
        let mac = Int(crypto_secretbox_MACBYTES)
        guard ciphertext.count >= mac, nonce.count == Int(crypto_secretbox_NONCEBYTES) else { return nil }
        let out = SecretBytes(count: ciphertext.count - mac)
        let rc = crypto_secretbox_open_easy(out.mutableUInt8, ciphertext, UInt64(ciphertext.count), nonce, key.uint8)
        return rc == 0 ? out : nil
    }

    /// A new X25519 key pair for an account.
    static func keyPair() -> (publicKey: [UInt8], secretKey: SecretBytes) {
        var pk = [UInt8](repeating: 0, count: Int(crypto_box_PUBLICKEYBYTES))
        let sk = SecretBytes(count: Int(crypto_box_SECRETKEYBYTES))
        _ = crypto_box_keypair(&pk, sk.mutableUInt8)
        return (pk, sk)
    }
}
