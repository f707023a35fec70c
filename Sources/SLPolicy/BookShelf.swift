#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage
internal import SLOpenSSL

/// The configured address books, loaded on first use and kept for the whole stream
/// (a 50,000-message bulk run reads each book once).
public final class BookShelf: @unchecked Sendable {
    let paths: [String: String]
    public let defaultBook: String?
    private var loaded: [String: AddressBook] = [:]
    private let lock = NSLock()   // several encryption workers may ask at once

    public init(books: [(name: String, path: String)], defaultBook: String?) {
        paths = Dictionary(books.map { ($0.name, $0.path) }, uniquingKeysWith: { a, _ in a })
        self.defaultBook = defaultBook
    }

    public func book(named name: String) throws -> AddressBook? {
        lock.lock()
        defer { lock.unlock() }
        if let b = loaded[name] { return b }
        guard let path = paths[name] else { return nil }
        let b = try AddressBook.load(name: name, path: path)
        loaded[name] = b
        return b
    }

    /// A file name for a new contact in a book directory. The address key may hold
    /// "/", ".." or anything a quoted local part allows, so only a safe alphabet
    /// survives: a hostile recipient must not choose where we write.
    static func fileName(for r: EmailAddress) -> String {
        var name = String(r.key.unicodeScalars.map { c -> Character in
            let ok = (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || "@._+-".unicodeScalars.contains(c)
            return ok ? Character(c) : "_"
        })
        if name.hasPrefix(".") { name = "_" + name }
        return name + ".vcf"
    }

    /// True when `save` has a book to write to.
    func canSave(preferring preferred: String?) -> Bool {
        guard let name = preferred ?? defaultBook else { return false }
        return paths[name] != nil
    }

    /// Saves a question asked of the sender to the preferred book, else the default
    /// book; returns the book's name, or nil when there is no book file to write.
    func save(question: PromptedQuestion, for r: EmailAddress, preferring preferred: String?) throws -> String? {
        guard let name = preferred ?? defaultBook, let path = paths[name] else { return nil }
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        let file = exists && isDirectory.boolValue ? path + "/" + Self.fileName(for: r) : path
        var contact = Contact(name: r.displayName, addresses: [r.addrSpec.lowercased()])
        contact.escrow = EscrowQuestion(question: question.question, answer: question.answer)
        try AddressBook.append(contact, toFile: file)
        lock.lock()
        loaded[name] = nil   // re-read on next use
        lock.unlock()
        return name
    }
}

/// Escrow answers a sender gave at the terminal without saving them to a book. Each is
/// a 0600 file named by a random token that travels in the routing field instead of
/// the secret; sl-escrow-pack reads and deletes it.
public struct PendingAnswers: Sendable {
    public let directory: String
    public init(directory: String) { self.directory = directory }

    public func store(recipient: String, question: String, answer: String) throws -> String {
        var raw = [UInt8](repeating: 0, count: 16)
        guard SystemRandom.fill(&raw) else { throw ConfigurationError(directory, 0, "no randomness available") }
        let token = hex(raw)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let body = try JSONSerialization.data(withJSONObject: ["recipient": recipient, "question": question, "answer": answer],
                                              options: [.sortedKeys])
        // Created 0600 by open(2) itself: the secret is never readable by others, not
        // even for the moment between creating a file and changing its mode.
        let path = directory + "/" + token
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw ConfigurationError(directory, 0, "cannot write a pending escrow answer here (\(String(cString: strerror(errno)))); check state_directory")
        }
        defer { close(fd) }
        try FileDescriptorIO.writeAll(fd, Array(body))
        return token
    }

    /// A pending answer as `store` wrote it: nil when it is gone or unreadable.
    /// The token must be what `store` makes (32 lower-case hex digits), never a
    /// path: it comes from a routing field.
    public func read(token: String) throws -> (path: String, recipient: String, question: String, answer: String)? {
        guard Self.isToken(token) else { throw MessageError.invalidField("qa=pending token is not valid") }
        let path = directory + "/" + token
        guard let data = FileManager.default.contents(atPath: path),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: String],
              let recipient = json["recipient"], let question = json["question"], let answer = json["answer"] else { return nil }
        return (path, recipient, question, answer)
    }

    public static func isToken(_ token: String) -> Bool {
        token.count == 32 && token.allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }
}
