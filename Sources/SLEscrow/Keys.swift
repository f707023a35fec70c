internal import CSodium
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Argon2id cost. Stored with every record and account, so the standard can rise
/// later without making old messages unreadable.
public struct KDFParameters: Sendable, Equatable, Codable {
    public var opsLimit: UInt64
    /// Bytes.
    public var memoryLimit: Int

    /// Refuses anything below OWASP's Argon2id minimum (t=2, m=19 MiB, p=1).
    public init(opsLimit: UInt64, memoryLimit: Int) throws {
        guard opsLimit >= Self.minimum.opsLimit, memoryLimit >= Self.minimum.memoryLimit else {
            throw EscrowError.weakKDF
        }
        self.init(unchecked: opsLimit, memoryLimit)
    }

    private init(unchecked opsLimit: UInt64, _ memoryLimit: Int) {
        self.opsLimit = opsLimit
        self.memoryLimit = memoryLimit
    }

    /// libsodium's "moderate": 3 passes over 64 MiB.
    public static let standard = KDFParameters(unchecked: 3, 64 << 20)
    /// OWASP's floor: 2 passes over 19 MiB.
    public static let minimum = KDFParameters(unchecked: 2, 19 << 20)

    private enum CodingKeys: String, CodingKey { case opsLimit, memoryLimit }

    /// Decoding validates too: a configuration file cannot smuggle in weak parameters.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(opsLimit: try c.decode(UInt64.self, forKey: .opsLimit),
                      memoryLimit: try c.decode(Int.self, forKey: .memoryLimit))
    }

    /// Parameters read back from the store: whatever they were when the record was
    /// written (which passed `init` then), without the floor check, which may have risen.
    static func stored(ops: Int64, memory: Int64) -> KDFParameters {
        KDFParameters(unchecked: UInt64(max(ops, 1)), Int(max(memory, 8192)))
    }
}

/// Answers to security questions are typed by people on phones and keyboards of all
/// kinds; normalising makes "Fluffy  the cat" and "fluffy the Cat" the same answer.
public enum Answer {
    /// NFKC (fullwidth and compatibility forms to plain ones), case-folded and
    /// lowercased, runs of white space collapsed to one space, trimmed. A final NFKC
    /// keeps the result stable when folding produced decomposed forms, so that
    /// `normalize(normalize(x)) == normalize(x)`.
    public static func normalize(_ answer: String) -> String {
        let compatible = answer.precomposedStringWithCompatibilityMapping
        let folded = compatible.folding(options: [.caseInsensitive], locale: nil).lowercased()
        let words = folded.split(whereSeparator: { $0.isWhitespace || $0.isNewline })
        return words.joined(separator: " ").precomposedStringWithCompatibilityMapping
    }
}

/// Argon2id of a normalised answer. Deriving costs a noticeable fraction of a second
/// and 64 MiB, so a tool derives it once per recipient per run and reuses it for every
/// message of the run (the salt is then shared by those records, which is fine: it
/// only has to keep precomputation from paying off across recipients).
public struct AnswerKey: Sendable {
    public let salt: [UInt8]
    public let parameters: KDFParameters
    let key: SecretBytes

    /// A new key with a random salt.
    public static func derive(answer: String, parameters: KDFParameters) throws -> AnswerKey {
        try derive(answer: answer, salt: Sodium.randomBytes(Int(crypto_pwhash_SALTBYTES)), parameters: parameters)
    }

    /// The key again from a stored salt (opening).
    static func derive(answer: String, salt: [UInt8], parameters: KDFParameters) throws -> AnswerKey {
        let key = try Sodium.argon2id(Answer.normalize(answer), salt: salt, parameters: parameters)
        return AnswerKey(salt: salt, parameters: parameters, key: key)
    }
}

/// A site secret mixed into every key-encryption key, kept outside the store (another
/// file, another backup), so a stolen database alone does not allow guessing answers.
public enum Pepper {
    public static let minimumLength = 32

    /// Reads the raw bytes of `path`; refuses a file that group or others may read,
    /// and one shorter than 32 bytes.
    public static func load(path: String) throws -> SecretBytes {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw EscrowError.storage("cannot read the pepper file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw EscrowError.storage("cannot read the pepper file \(path): \(String(cString: strerror(errno)))")
        }
        guard st.st_mode & 0o077 == 0 else {
            throw EscrowError.storage("the pepper file \(path) is open to group or others: chmod 600 \(path)")
        }
        let size = Int(st.st_size)
        guard size >= minimumLength else {
            throw EscrowError.storage("the pepper file \(path) holds \(size) bytes, fewer than \(minimumLength)")
        }
        guard size <= 1 << 16 else {
            throw EscrowError.storage("the pepper file \(path) is too large for a pepper (\(size) bytes)")
        }
        let secret = SecretBytes(count: size)
        var done = 0
        while done < size {
            let n = secret.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, size - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw EscrowError.storage("cannot read the pepper file \(path): short read")
            }
            done += n
        }
        return secret
    }

    /// The BLAKE2b key made from a pepper: itself when it fits BLAKE2b's key size
    /// (16...64 bytes), else its hash.
    static func hashKey(_ pepper: SecretBytes) -> SecretBytes {
        if pepper.count <= Int(crypto_generichash_KEYBYTES_MAX) { return pepper }
        return Sodium.hash([.text("sl-escrow pepper v1"), .secret(pepper)], length: 64)
    }
}
