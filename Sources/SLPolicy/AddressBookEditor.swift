// Changing one contact in a book file that people also edit by hand: every other
// card keeps its bytes, the file is replaced atomically (a reader sees the old book
// or the new one, never half of one), and what is written is read back with the
// same reader the classifier uses before it replaces anything.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage

/// What `sl-contacts add` puts into a card. Each kind given replaces that kind in an
/// existing card (a new PGP key replaces the card's PGP keys and their pin, a new
/// certificate its certificates, a new question its question and answer); the rest of
/// the card stays as it was.
public struct ContactUpdate: Sendable, Equatable {
    public var name: String?
    public var pgpKey: PGPKeyRef?
    public var smimeCertificate: SMIMECertificateRef?
    public var escrow: EscrowQuestion?

    public init(name: String? = nil, pgpKey: PGPKeyRef? = nil, smimeCertificate: SMIMECertificateRef? = nil,
                escrow: EscrowQuestion? = nil) {
        self.name = name
        self.pgpKey = pgpKey
        self.smimeCertificate = smimeCertificate
        self.escrow = escrow
    }

    public var isEmpty: Bool { name == nil && pgpKey == nil && smimeCertificate == nil && escrow == nil }
}

/// Why a book was not changed. Codes as sysexits(3): the address already has a card
/// (73, unless replacing), no card has it (67), the book cannot be written (73/75).
public struct AddressBookEditError: Error, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable { case exists, notFound, cannotWrite, cannotLock }
    public let kind: Kind
    public let description: String
    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

public enum AddressBookEditor {
    /// Where a card of the book lives: its file and its cards, each with its bytes.
    struct BookFile {
        let path: String
        var bytes: [UInt8]
        /// Each card with the byte range it occupies, blank lines after it included.
        var cards: [(card: VCard, range: Range<Int>)]
        var prefix: Range<Int>
    }

    /// Adds `update` as a card for `address`, or with `replace` applies it to the card
    /// that has the address. A book that is a directory gets a new card in
    /// `address.vcf` (in a safe alphabet). Returns the file written and the contact as
    /// the reader reads it back.
    @discardableResult
    public static func add(_ update: ContactUpdate, for address: String, to book: String, replace: Bool) throws -> (file: String, contact: Contact) {
        let wanted = address.trimmingSpaces.lowercased()
        guard Contact.looksLikeAddress(wanted) else {
            throw AddressBookEditError(.notFound, "\"\(address)\" is not an email address (expected local@domain)")
        }
        let file = try fileHolding(wanted, in: book) ?? newFile(for: wanted, in: book)
        return try edit(file) { f in
            if let i = f.cards.firstIndex(where: { (try? Contact(vCard: $0.card))?.addresses.contains(wanted) ?? false }) {
                guard replace else {
                    throw AddressBookEditError(.exists, "\(wanted) already has a card in \(file) (line \(f.cards[i].card.line)); add --replace to replace what this command gives, or remove it first")
                }
                let card = try updated(f.cards[i].card, with: update)
                f.replace(i, with: Array(card.serialized().utf8))
            } else {
                let contact = Contact(name: update.name, addresses: [wanted], pgpKeys: update.pgpKey.map { [$0] } ?? [],
                                      smimeCertificates: update.smimeCertificate.map { [$0] } ?? [], escrow: update.escrow,
                                      pinnedPGPFingerprint: update.pgpKey?.fingerprint)
                f.append(Array(contact.vCard.serialized().utf8))
            }
        } check: { contacts in
            guard let c = contacts.first(where: { $0.addresses.contains(wanted) }) else {
                throw AddressBookEditError(.cannotWrite, "the card for \(wanted) did not read back; \(file) is unchanged")
            }
            let expectation = (update.pgpKey.map { c.pgpKeys == [$0] && c.pinnedPGPFingerprint == $0.fingerprint } ?? true)
                && (update.smimeCertificate.map { c.smimeCertificates == [$0] } ?? true)
                && (update.escrow.map { c.escrow == $0 } ?? true)
                && (update.name.map { c.name == $0.trimmingSpaces } ?? true)
            guard expectation else {
                throw AddressBookEditError(.cannotWrite, "the card for \(wanted) read back differently from what was written; \(file) is unchanged")
            }
            return c
        }
    }

    /// Removes `address` from every card of the book that lists it; a card left
    /// without an address goes altogether. Returns the files changed.
    @discardableResult
    public static func remove(_ address: String, from book: String) throws -> [String] {
        let wanted = address.trimmingSpaces.lowercased()
        var changed: [String] = []
        for file in try files(of: book) {
            let bytes = try AddressBook.readFile(file)
            let cards = try parse(bytes, file: file).cards
            guard cards.contains(where: { (try? Contact(vCard: $0.card))?.addresses.contains(wanted) ?? false }) else { continue }
            _ = try edit(file) { f in
                for i in f.cards.indices.reversed() {
                    let card = f.cards[i].card
                    guard (try? Contact(vCard: card))?.addresses.contains(wanted) ?? false else { continue }
                    var kept = card
                    kept.properties.removeAll { $0.name == "EMAIL" && emailAddress($0) == wanted }
                    if kept.properties.contains(where: { $0.name == "EMAIL" }) {
                        f.replace(i, with: Array(kept.serialized().utf8))
                    } else {
                        f.replace(i, with: [])
                    }
                }
            } check: { contacts in
                guard !contacts.contains(where: { $0.addresses.contains(wanted) }) else {
                    throw AddressBookEditError(.cannotWrite, "\(wanted) is still in \(file) after removing it; the file is unchanged")
                }
                return Contact()
            }
            changed.append(file)
        }
        guard !changed.isEmpty else {
            throw AddressBookEditError(.notFound, "\(wanted) is not in the address book \(book)")
        }
        return changed
    }

    // MARK: cards

    /// The card with `update` applied: each kind given replaces that kind.
    static func updated(_ card: VCard, with update: ContactUpdate) throws -> VCard {
        var out = card
        func kind(_ p: VCardProperty) -> KeyProperty.Decoded? { try? KeyProperty.decode(p) }
        if let name = update.name {
            out.properties.removeAll { $0.name == "FN" }
            out.properties.insert(VCardProperty(name: "FN", text: name), at: min(1, out.properties.count))
        }
        if let key = update.pgpKey {
            out.properties.removeAll {
                if $0.name == "X-SL-PGP-FINGERPRINT" { return true }
                guard $0.name == "KEY", case .pgp? = kind($0) else { return false }
                return true
            }
            out.properties += Contact(pgpKeys: [key], pinnedPGPFingerprint: key.fingerprint).vCard.properties
                .filter { $0.name == "KEY" || $0.name == "X-SL-PGP-FINGERPRINT" }
        }
        if let cert = update.smimeCertificate {
            out.properties.removeAll {
                guard $0.name == "KEY", case .certificate? = kind($0) else { return false }
                return true
            }
            out.properties += Contact(smimeCertificates: [cert]).vCard.properties.filter { $0.name == "KEY" }
        }
        if let escrow = update.escrow {
            out.properties.removeAll { $0.name == "X-SL-ESCROW-QUESTION" || $0.name == "X-SL-ESCROW-ANSWER" }
            out.properties += Contact(escrow: escrow).vCard.properties
                .filter { $0.name == "X-SL-ESCROW-QUESTION" || $0.name == "X-SL-ESCROW-ANSWER" }
        }
        return out
    }

    private static func emailAddress(_ p: VCardProperty) -> String {
        var a = p.text.trimmingSpaces
        if a.lowercased().hasPrefix("mailto:") { a = String(a.dropFirst(7)) }
        return a.lowercased()
    }

    /// Cards with their byte ranges, by the physical lines the parser reports.
    static func parse(_ bytes: [UInt8], file: String) throws -> BookFile {
        let cards: [VCard]
        do {
            cards = try VCard.parse(bytes)
            for c in cards { _ = try Contact(vCard: c) }
        } catch let error as VCardError {
            throw AddressBookError(file: file, line: error.line, problem: error.message + " (fix the book before changing it)")
        }
        // Line n (1-based, after a byte order mark) starts at lineStarts[n - 1].
        let bom = bytes.hasBytePrefix("\u{FEFF}") ? 3 : 0
        var lineStarts = [bom]
        for i in bom..<bytes.count where bytes[i] == 0x0A { lineStarts.append(i + 1) }
        func start(_ line: Int) -> Int { lineStarts[min(max(line - 1, 0), lineStarts.count - 1)] }
        var ranged: [(card: VCard, range: Range<Int>)] = []
        for (i, card) in cards.enumerated() {
            let end = i + 1 < cards.count ? start(cards[i + 1].line) : bytes.count
            ranged.append((card, start(card.line)..<end))
        }
        let prefixEnd = cards.first.map { start($0.line) } ?? bytes.count
        return BookFile(path: file, bytes: bytes, cards: ranged, prefix: 0..<prefixEnd)
    }

    // MARK: files

    /// The .vcf files of a book: the file itself, or a directory's (as `AddressBook.load`).
    static func files(of book: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: book, isDirectory: &isDirectory) else { return [] }
        guard isDirectory.boolValue else { return [book] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: book)) ?? []
        return names.filter { !$0.hasPrefix(".") && $0.lowercased().hasSuffix(".vcf") }.sorted()
            .map { (book as NSString).appendingPathComponent($0) }
    }

    private static func fileHolding(_ address: String, in book: String) throws -> String? {
        for file in try files(of: book) {
            let contacts = try parse(try AddressBook.readFile(file), file: file).cards.compactMap { try? Contact(vCard: $0.card) }
            if contacts.contains(where: { $0.addresses.contains(address) }) { return file }
        }
        return nil
    }

    private static func newFile(for address: String, in book: String) throws -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: book, isDirectory: &isDirectory), isDirectory.boolValue {
            guard let r = try? EmailAddress(parsing: address) else {
                throw AddressBookEditError(.notFound, "\"\(address)\" is not an email address")
            }
            return (book as NSString).appendingPathComponent(BookShelf.fileName(for: r))
        }
        return book
    }

    /// Locks the file, reads it, lets `change` edit it, writes the result to a new file
    /// beside it, reads that back with the book reader (`check` sees its contacts),
    /// and renames it over the original.
    private static func edit(_ path: String, _ change: (inout BookFile) throws -> Void,
                             check: ([Contact]) throws -> Contact) throws -> (file: String, contact: Contact) {
        let lock = try BookLock(path)
        defer { lock.release() }
        do {
            return try edit(path, lock: lock, change, check: check)
        } catch {
            // A book the lock made and nothing filled is not left behind.
            if !lock.existed { unlink(path) }
            throw error
        }
    }

    private static func edit(_ path: String, lock: BookLock, _ change: (inout BookFile) throws -> Void,
                             check: ([Contact]) throws -> Contact) throws -> (file: String, contact: Contact) {
        var file = try parse(lock.exists ? try AddressBook.readFile(path) : [], file: path)
        try change(&file)
        let output = file.rendered
        let contacts: [Contact]
        do {
            contacts = try VCard.parse(output).map(Contact.init(vCard:))
        } catch let error as VCardError {
            throw AddressBookEditError(.cannotWrite, "the new book does not read back (line \(error.line): \(error.message)); \(path) is unchanged")
        }
        let contact = try check(contacts)
        try replaceFile(path, with: output, like: lock.info)
        return (path, contact)
    }

    /// Writes `bytes` to a temporary file in the same directory, syncs it, and renames
    /// it over `path`, keeping the original's mode and owner (0600 for a new book:
    /// books hold escrow answers); then syncs the directory so the rename is durable.
    static func replaceFile(_ path: String, with bytes: [UInt8], like original: stat?) throws {
        let directory = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        var template = Array((directory + "/." + (path as NSString).lastPathComponent + ".XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw AddressBookEditError(.cannotWrite, "cannot make a new file in \(directory): \(String(cString: strerror(errno)))")
        }
        let temporary = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var renamed = false
        defer {
            close(fd)
            if !renamed { unlink(temporary) }
        }
        let mode = original.map { $0.st_mode & 0o7777 } ?? 0o600
        guard fchmod(fd, mode) == 0 else {
            throw AddressBookEditError(.cannotWrite, "cannot set the mode of the new book: \(String(cString: strerror(errno)))")
        }
        if let original, original.st_uid != geteuid() || original.st_gid != getegid() {
            guard fchown(fd, original.st_uid, original.st_gid) == 0 else {
                throw AddressBookEditError(.cannotWrite, "cannot give the new book the owner of \(path) (\(String(cString: strerror(errno)))); run as its owner or as root")
            }
        }
        do { try FileDescriptorIO.writeAll(fd, bytes) } catch {
            throw AddressBookEditError(.cannotWrite, "writing the new book failed: \(error); \(path) is unchanged")
        }
        guard fsync(fd) == 0 else {
            throw AddressBookEditError(.cannotWrite, "cannot sync the new book to disk: \(String(cString: strerror(errno))); \(path) is unchanged")
        }
        guard rename(temporary, path) == 0 else {
            throw AddressBookEditError(.cannotWrite, "cannot replace \(path): \(String(cString: strerror(errno)))")
        }
        renamed = true
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}

extension AddressBookEditor.BookFile {
    mutating func replace(_ i: Int, with text: [UInt8]) {
        let range = cards[i].range
        // A card replaced keeps the blank lines that followed it.
        var trailing = range.upperBound
        while trailing > range.lowerBound, [0x0A, 0x0D, 0x20, 0x09].contains(bytes[trailing - 1]) { trailing -= 1 }
        var tail = Array(bytes[trailing..<range.upperBound])
        // The card's own line end is in the new text already.
        if tail.first == 0x0D { tail.removeFirst() }
        if tail.first == 0x0A { tail.removeFirst() }
        let replacement = text.isEmpty ? [] : text + tail
        bytes.replaceSubrange(range, with: replacement)
        let delta = replacement.count - range.count
        cards[i].range = range.lowerBound..<(range.lowerBound + replacement.count)
        for j in cards.indices where j > i { cards[j].range = (cards[j].range.lowerBound + delta)..<(cards[j].range.upperBound + delta) }
    }

    mutating func append(_ text: [UInt8]) {
        if let last = bytes.last, last != 0x0A { bytes += [0x0D, 0x0A] }
        bytes += text
    }

    var rendered: [UInt8] { bytes }
}

/// An exclusive flock(2) on the book file, as `AddressBook.append` takes it, so a
/// question saved by sl-classify while a card is edited is not lost in the rename.
/// Both check after locking that the path still names the locked file, and take
/// the lock again on the new one if not.
final class BookLock {
    let fd: Int32
    let existed: Bool
    let exists: Bool
    let info: stat?

    init(_ path: String) throws {
        var attempts = 0
        while true {
            let existed = FileManager.default.fileExists(atPath: path)
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard fd >= 0 else {
                let why = errno == ELOOP ? "is a symbolic link; give the path of the book file itself" : String(cString: strerror(errno))
                throw AddressBookEditError(.cannotWrite, "cannot open \(path): \(why)")
            }
            while flock(fd, LOCK_EX) != 0 {
                guard errno == EINTR else {
                    close(fd)
                    throw AddressBookEditError(.cannotLock, "cannot lock \(path): \(String(cString: strerror(errno)))")
                }
            }
            var st = stat(), named = stat()
            guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
                close(fd)
                throw AddressBookEditError(.cannotWrite, "\(path) is not a regular file; give the path of a .vcf file or a directory of them")
            }
            // Another editor may have renamed a new book over the path (or a failed
            // add removed it) while this one waited: the lock must be on the file
            // the path names now, or a card saved meanwhile would be overwritten.
            attempts += 1
            if stat(path, &named) != 0 || named.st_ino != st.st_ino || named.st_dev != st.st_dev {
                close(fd)
                guard attempts < 10 else {
                    throw AddressBookEditError(.cannotLock, "\(path) keeps being replaced while it is locked; try again")
                }
                continue
            }
            self.fd = fd
            self.existed = existed
            // A file made just now by the lock is empty: a new book, mode 0600.
            self.exists = existed && st.st_size > 0
            self.info = existed ? st : nil
            return
        }
    }

    func release() { close(fd) }
}
