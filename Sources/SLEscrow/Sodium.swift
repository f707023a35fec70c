internal import CSodium
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libsodium must be initialised once before use; sodium_init is idempotent and
/// thread-safe.
enum Sodium {
    static let ready: Bool = sodium_init() >= 0

    static func requireReady() throws {
        guard ready else { throw EscrowError.storage("libsodium failed to initialise") }
    }

    /// BLAKE2b over the concatenation of `parts`, keyed when `key` is given (the pepper).
    /// Parts are fed one by one so no secret is ever copied into a Swift array.
    static func hash(_ parts: [HashPart], key: SecretBytes? = nil, length: Int = 32) -> SecretBytes {
        _ = ready
        let out = SecretBytes(count: length)
        // The state type is 64-byte aligned, which Swift does not import: raw memory.
        let stateSize = crypto_generichash_statebytes()
        let raw = UnsafeMutableRawPointer.allocate(byteCount: stateSize, alignment: 64)
        let state = OpaquePointer(raw)
        defer {
            sodium_memzero(raw, stateSize)
            raw.deallocate()
        }
        if let key {
            _ = crypto_generichash_init(state, key.uint8, key.count, length)
        } else {
            _ = crypto_generichash_init(state, nil, 0, length)
        }
        for part in parts {
            switch part {
            case .bytes(let b):
                b.withUnsafeBufferPointer { _ = crypto_generichash_update(state, $0.baseAddress, UInt64($0.count)) }
            case .text(let s):
                Array(s.utf8).withUnsafeBufferPointer { _ = crypto_generichash_update(state, $0.baseAddress, UInt64($0.count)) }
            case .secret(let s):
                _ = crypto_generichash_update(state, s.uint8, UInt64(s.count))
            }
        }
        _ = crypto_generichash_final(state, out.mutableUInt8, length)
        return out
    }

    enum HashPart {
        case bytes([UInt8])
        case text(String)
        case secret(SecretBytes)
    }

    /// Argon2id of `password` (already normalised by the caller) with `salt`.
    static func argon2id(_ password: String, salt: [UInt8], parameters: KDFParameters, length: Int = 32) throws -> SecretBytes {
        try requireReady()
        precondition(salt.count == crypto_pwhash_SALTBYTES)
        // The password's UTF-8 goes through secure memory, not a lingering Swift array.
        let utf8 = SecretBytes(count: password.utf8.count)
        utf8.withUnsafeMutableBytes { p in p.copyBytes(from: password.utf8) }
        let out = SecretBytes(count: length)
        let rc = utf8.withUnsafeBytes { pw in
            crypto_pwhash(out.mutableUInt8, UInt64(length),
                          pw.baseAddress!.assumingMemoryBound(to: CChar.self), UInt64(pw.count),
                          salt, parameters.opsLimit, Int(parameters.memoryLimit),
                          crypto_pwhash_ALG_ARGON2ID13)
        }
        // Only fails when the memory cannot be had: a resource problem, not a wrong password.
        guard rc == 0 else {
            throw EscrowError.storage("Argon2id needs \(parameters.memoryLimit >> 20) MiB of memory and could not get it")
        }
        return out
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        _ = ready
        var b = [UInt8](repeating: 0, count: count)
        b.withUnsafeMutableBufferPointer { randombytes_buf($0.baseAddress!, count) }
        return b
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// base64url without padding, the form the link secret takes in a URL.
    static func base64url(_ secret: SecretBytes) -> String {
        let size = sodium_base64_encoded_len(secret.count, sodium_base64_VARIANT_URLSAFE_NO_PADDING)
        var out = [CChar](repeating: 0, count: size)
        _ = sodium_bin2base64(&out, size, secret.uint8, secret.count, sodium_base64_VARIANT_URLSAFE_NO_PADDING)
        let text = String(decoding: out.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        sodium_memzero(&out, size)
        return text
    }

    /// Decodes a base64url link secret of exactly `count` bytes, nil when it is not one.
    static func fromBase64url(_ text: String, count: Int) -> SecretBytes? {
        _ = ready
        let input = Array(text.utf8)
        guard input.count == sodium_base64_encoded_len(count, sodium_base64_VARIANT_URLSAFE_NO_PADDING) - 1 else {
            return nil
        }
        let out = SecretBytes(count: count)
        var length = 0
        let rc = input.withUnsafeBufferPointer { i in
            i.withMemoryRebound(to: CChar.self) { c in
                sodium_base642bin(out.mutableUInt8, count, c.baseAddress, c.count,
                                  nil, &length, nil, sodium_base64_VARIANT_URLSAFE_NO_PADDING)
            }
        }
        guard rc == 0, length == count else { return nil }
        return out
    }
}

/// Key material: the content key, link secrets, answer keys, KEKs, private keys, the
/// pepper. Held in sodium_malloc'd memory (guard pages, mlock'd where the system
/// allows) and wiped when released, so a secret never lives in a Swift array that
/// copy-on-write could leave lying around. No description: it is never printed.
public final class SecretBytes: @unchecked Sendable {
    private let pointer: UnsafeMutableRawPointer
    private let secure: Bool
    public let count: Int

    init(count: Int) {
        _ = Sodium.ready
        self.count = count
        // sodium_malloc(0) may return NULL; a byte of room keeps the pointer valid.
        if let p = sodium_malloc(max(count, 1)) {
            pointer = p
            secure = true
        } else {
            // Out of lockable memory: plain memory still gets wiped on release.
            pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 16)
            secure = false
        }
        sodium_memzero(pointer, max(count, 1))
    }

    public convenience init(_ bytes: [UInt8]) {
        self.init(count: bytes.count)
        bytes.withUnsafeBytes { b in pointer.copyMemory(from: b.baseAddress ?? UnsafeRawPointer(pointer), byteCount: b.count) }
    }

    public static func random(_ count: Int) -> SecretBytes {
        let s = SecretBytes(count: count)
        randombytes_buf(s.pointer, count)
        return s
    }

    deinit {
        if secure {
            sodium_free(pointer)   // wipes before freeing
        } else {
            sodium_memzero(pointer, max(count, 1))
            pointer.deallocate()
        }
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: pointer, count: count))
    }

    var uint8: UnsafePointer<UInt8> { UnsafePointer(pointer.assumingMemoryBound(to: UInt8.self)) }
    var mutableUInt8: UnsafeMutablePointer<UInt8> { pointer.assumingMemoryBound(to: UInt8.self) }

    /// Constant-time comparison (sodium_memcmp).
    func constantTimeEquals(_ other: [UInt8]) -> Bool {
        guard other.count == count else { return false }
        return other.withUnsafeBytes { sodium_memcmp(pointer, $0.baseAddress!, count) == 0 }
    }

    /// A copy of the bytes as an array: only for values that are not secret once
    /// derived (the link verifier, a hash stored in the database).
    func publicCopy() -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}

/// Random octets for values that are not keys (tokens, ids): libsodium's
/// randombytes, seeded from the kernel, without a system call per draw.
public enum RandomOctets {
    public static func make(_ count: Int) -> [UInt8] { Sodium.randomBytes(count) }

    /// `count` random octets as base64url without padding (43 characters for 32).
    public static func token(_ count: Int) -> String {
        let bytes = Sodium.randomBytes(count)
        let size = sodium_base64_encoded_len(count, sodium_base64_VARIANT_URLSAFE_NO_PADDING)
        var out = [CChar](repeating: 0, count: size)
        _ = sodium_bin2base64(&out, size, bytes, count, sodium_base64_VARIANT_URLSAFE_NO_PADDING)
        return String(decoding: out.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
