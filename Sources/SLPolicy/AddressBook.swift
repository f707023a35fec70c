// Address books: vCard files, or directories of them, that tell us which keys and
// escrow questions belong to which correspondents. A book that does not load is an
// error, not an empty book: a contact quietly missing its key would be sent to by a
// weaker route without anyone noticing.
import Foundation
import SLMessage

/// Why an address book did not load: which file, which line, and what to fix.
public struct AddressBookError: Error, Equatable, CustomStringConvertible {
    public let file: String
    /// 1-based line, when the problem is at one place in the file.
    public let line: Int?
    public let problem: String

    public init(file: String, line: Int? = nil, problem: String) {
        self.file = file
        self.line = line
        self.problem = problem
    }

    public var description: String {
        "address book \(file)\(line.map { ":\($0)" } ?? ""): \(problem)"
    }
}

public struct AddressBook: Sendable {
    public let name: String
    public let path: String
    public var contacts: [Contact]

    /// Address book files are small; anything larger is a mistake (or an attack on memory).
    public static let maximumFileSize = 32 << 20

    public init(name: String, path: String, contacts: [Contact]) {
        self.name = name
        self.path = path
        self.contacts = contacts
    }

    /// Loads a .vcf file, or every *.vcf file directly in a directory in name order
    /// (hidden files skipped: editors leave .swp and .#lock files there). Contacts keep
    /// file order, then card order, which decides `contact(for:)` when two list one address.
    public static func load(name: String, path: String) throws -> AddressBook {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw AddressBookError(file: path, problem: "does not exist; create it or fix the path in the configuration")
        }
        var files = [path]
        if isDirectory.boolValue {
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: path)
            } catch {
                throw AddressBookError(file: path, problem: "cannot list the directory: \(error.localizedDescription)")
            }
            files = names.filter { !$0.hasPrefix(".") && $0.lowercased().hasSuffix(".vcf") }
                .sorted()
                .map { (path as NSString).appendingPathComponent($0) }
        }
        var contacts: [Contact] = []
        for file in files {
            let bytes = try readFile(file)
            do {
                for card in try VCard.parse(bytes) { contacts.append(try Contact(vCard: card)) }
            } catch let error as VCardError {
                throw AddressBookError(file: file, line: error.line, problem: error.message)
            }
        }
        return AddressBook(name: name, path: path, contacts: contacts)
    }

    /// The first contact listing `address`, compared case-insensitively.
    public func contact(for address: String) -> Contact? {
        let wanted = address.trimmingSpaces.lowercased()
        return contacts.first { $0.addresses.contains(wanted) }
    }

    /// Appends the contact as a vCard 4 card, creating the file (mode 0600: it holds
    /// escrow answers) if missing. One O_APPEND write, so a concurrent reader or
    /// appender sees the whole card or none of it, then fsync so "saved" means saved.
    /// The append holds flock(2) on the file, as sl-contacts does while it replaces the
    /// book with a new file; a lock won on a file renamed away meanwhile is retried
    /// on the new one, so the card is never appended to a replaced book.
    public static func append(_ contact: Contact, toFile path: String) throws {
        var attempts = 0
        while true {
            // Read-write only so the last octet can be checked; every write still appends.
            let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard fd >= 0 else {
                throw AddressBookError(file: path, problem: "cannot open for appending: \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
            var info = stat(), named = stat()
            guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
                throw AddressBookError(file: path, problem: "is not a regular file; give the path of a .vcf file")
            }
            // Locked a file the path no longer names (replaced by sl-contacts, or
            // removed by a failed add): take the lock again on what it names now.
            attempts += 1
            if stat(path, &named) != 0 || named.st_ino != info.st_ino || named.st_dev != info.st_dev {
                guard attempts < 10 else {
                    throw AddressBookError(file: path, problem: "keeps being replaced while it is locked; the card was not saved, try again")
                }
                continue
            }
            try append(contact, fd: fd, size: info.st_size, path: path)
            return
        }
    }

    private static func append(_ contact: Contact, fd: Int32, size: off_t, path: String) throws {
        var text = Array(contact.vCard.serialized().utf8)
        // A file whose last line lacks its line end would glue END:VCARD to our BEGIN.
        if size > 0 {
            var last: UInt8 = 0
            // If the octet cannot be read, a blank line is harmless where a glued one is not.
            if pread(fd, &last, 1, off_t(size - 1)) != 1 || last != 0x0A { text = [0x0D, 0x0A] + text }
        }
        let written = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == text.count else {
            let reason = written < 0 ? String(cString: strerror(errno)) : "short write (disk full?)"
            throw AddressBookError(file: path, problem: "appending the contact failed: \(reason); check the end of the file")
        }
        guard fsync(fd) == 0 else {
            throw AddressBookError(file: path, problem: "cannot sync to disk: \(String(cString: strerror(errno)))")
        }
    }

    /// Reads a whole regular file, refusing FIFOs and devices (which could block or
    /// never end) and anything over `maximumFileSize`.
    static func readFile(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            throw AddressBookError(file: path, problem: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw AddressBookError(file: path, problem: "is not a regular file")
        }
        guard info.st_size <= maximumFileSize else {
            throw AddressBookError(file: path, problem: "is larger than \(maximumFileSize >> 20) MiB; split it into several files in a directory")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else {
                throw AddressBookError(file: path, problem: "read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
            // The file may grow after fstat; the limit still holds.
            guard bytes.count <= maximumFileSize else {
                throw AddressBookError(file: path, problem: "is larger than \(maximumFileSize >> 20) MiB")
            }
        }
        return bytes
    }
}
