import Foundation
import Testing
@testable import SLPolicy

/// Writing cards into a book the classifier reads: every card written reads back
/// through `AddressBook.load`, other cards keep their bytes, the file is replaced
/// (mode kept, 0600 when new), and nothing is clobbered without `replace`.
@Suite struct ContactsBookEditingTests {
    static let handWritten = """
    BEGIN:VCARD\r
    VERSION:4.0\r
    FN:Hand Written\r
    EMAIL;TYPE=work:hand@example.org\r
    TEL:+49 30 1234\r
    NOTE:kept\\, exactly as written\r
    X-SL-ESCROW-QUESTION:Street?\r
    X-SL-ESCROW-ANSWER:Elm\r
    END:VCARD\r
    \r
    BEGIN:VCARD
    VERSION:3.0
    FN:Old Style
    EMAIL:old@example.org
    END:VCARD

    """

    static func key() throws -> (GnuPGHome, PGPKeyRef, String) {
        let home = try GnuPGHome()
        let fpr = try home.generate("Bob <bob@example.org>", algorithm: "ed25519", usage: "cert", encryptionSubkey: "cv25519")
        return (home, try PGPKeyRef(keyData: try home.gpg(["--export", fpr])), fpr)
    }

    @Test func aNewCardReadsBackAndTheOthersKeepTheirBytes() throws {
        let dir = try TemporaryDirectory()
        let book = dir.path + "/book.vcf"
        try Self.handWritten.write(toFile: book, atomically: true, encoding: .utf8)
        chmod(book, 0o640)
        let (_, key, fpr) = try Self.key()
        let escrow = EscrowQuestion(question: "Dog's name; first pet?", answer: "Rex, the 1st\\")
        let (file, contact) = try AddressBookEditor.add(ContactUpdate(name: "Bob B", pgpKey: key, escrow: escrow),
                                                        for: "Bob@Example.org", to: book, replace: false)
        #expect(file == book)
        #expect(contact.pgpKeys == [key] && contact.pinnedPGPFingerprint == fpr && contact.escrow == escrow)
        let bytes = try String(contentsOfFile: book, encoding: .utf8)
        #expect(bytes.hasPrefix(Self.handWritten), "the hand-written cards changed")
        let loaded = try AddressBook.load(name: "b", path: book)
        #expect(loaded.contacts.count == 3)
        let bob = try #require(loaded.contact(for: "bob@example.org"))
        #expect(bob.name == "Bob B" && bob.pgpKeys.first?.keyData == key.keyData && bob.escrow == escrow)
        #expect(bob.pinnedPGPFingerprint == fpr)
        var info = stat()
        #expect(stat(book, &info) == 0 && info.st_mode & 0o777 == 0o640)
        // No temporary file left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["book.vcf"])
    }

    @Test func aNewBookIsMode0600() throws {
        let dir = try TemporaryDirectory()
        let book = dir.path + "/new.vcf"
        try AddressBookEditor.add(ContactUpdate(escrow: EscrowQuestion(question: "Q?", answer: "A")), for: "a@example.org", to: book, replace: false)
        var info = stat()
        #expect(stat(book, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(try AddressBook.load(name: "n", path: book).contact(for: "a@example.org")?.escrow?.answer == "A")
    }

    @Test func anExistingAddressIsNotClobberedWithoutReplace() throws {
        let dir = try TemporaryDirectory()
        let book = dir.path + "/book.vcf"
        try Self.handWritten.write(toFile: book, atomically: true, encoding: .utf8)
        let update = ContactUpdate(escrow: EscrowQuestion(question: "New?", answer: "new"))
        #expect(throws: AddressBookEditError.self) { try AddressBookEditor.add(update, for: "hand@example.org", to: book, replace: false) }
        #expect(try String(contentsOfFile: book, encoding: .utf8) == Self.handWritten)
    }

    /// --replace replaces the kinds it is given and keeps the rest of the card.
    @Test func replaceChangesOnlyWhatItIsGiven() throws {
        let dir = try TemporaryDirectory()
        let book = dir.path + "/book.vcf"
        try Self.handWritten.write(toFile: book, atomically: true, encoding: .utf8)
        let (_, key, fpr) = try Self.key()
        try AddressBookEditor.add(ContactUpdate(pgpKey: key), for: "hand@example.org", to: book, replace: true)
        let text = try String(contentsOfFile: book, encoding: .utf8)
        #expect(text.contains("TEL:+49 30 1234") && text.contains("NOTE:kept\\, exactly as written"))
        #expect(text.hasSuffix("BEGIN:VCARD\nVERSION:3.0\nFN:Old Style\nEMAIL:old@example.org\nEND:VCARD\n") && text.contains("END:VCARD\r\n\r\nBEGIN:VCARD\nVERSION:3.0"))
        let hand = try #require(try AddressBook.load(name: "b", path: book).contact(for: "hand@example.org"))
        #expect(hand.escrow == EscrowQuestion(question: "Street?", answer: "Elm"))
        #expect(hand.pgpKeys == [key] && hand.pinnedPGPFingerprint == fpr)
        // A second key replaces the first, and its pin.
        let (_, other, otherFpr) = try Self.key()
        try AddressBookEditor.add(ContactUpdate(pgpKey: other, escrow: EscrowQuestion(question: "Town?", answer: "Ulm")),
                                  for: "hand@example.org", to: book, replace: true)
        let again = try #require(try AddressBook.load(name: "b", path: book).contact(for: "hand@example.org"))
        #expect(again.pgpKeys == [other] && again.pinnedPGPFingerprint == otherFpr && otherFpr != fpr)
        #expect(again.escrow?.answer == "Ulm")
    }

    @Test func removeTakesTheAddressAndAnEmptyCardGoes() throws {
        let dir = try TemporaryDirectory()
        let book = dir.path + "/book.vcf"
        try (Self.handWritten + "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Two\r\nEMAIL:one@example.org\r\nEMAIL:two@example.org\r\nEND:VCARD\r\n")
            .write(toFile: book, atomically: true, encoding: .utf8)
        try AddressBookEditor.remove("HAND@example.org", from: book)
        var loaded = try AddressBook.load(name: "b", path: book)
        #expect(loaded.contact(for: "hand@example.org") == nil && loaded.contacts.count == 2)
        #expect(try String(contentsOfFile: book, encoding: .utf8).hasPrefix("BEGIN:VCARD\nVERSION:3.0\nFN:Old Style\n"))
        try AddressBookEditor.remove("one@example.org", from: book)
        loaded = try AddressBook.load(name: "b", path: book)
        #expect(loaded.contact(for: "two@example.org")?.addresses == ["two@example.org"])
        #expect(throws: AddressBookEditError.self) { try AddressBookEditor.remove("nobody@example.org", from: book) }
    }

    /// A book directory gets a file per new contact; a contact in any of its files is found.
    @Test func aBookDirectory() throws {
        let dir = try TemporaryDirectory()
        try Self.handWritten.write(toFile: dir.path + "/a.vcf", atomically: true, encoding: .utf8)
        let (file, _) = try AddressBookEditor.add(ContactUpdate(escrow: EscrowQuestion(question: "Q?", answer: "A")),
                                                  for: "new@example.org", to: dir.path, replace: false)
        #expect(file == dir.path + "/new@example.org.vcf")
        try AddressBookEditor.add(ContactUpdate(name: "Renamed"), for: "old@example.org", to: dir.path, replace: true)
        let loaded = try AddressBook.load(name: "d", path: dir.path)
        #expect(loaded.contact(for: "old@example.org")?.name == "Renamed" && loaded.contact(for: "new@example.org") != nil)
    }

    /// A damaged book is not rewritten: the reader's error, with its line.
    @Test func aBrokenBookIsLeftAlone() throws {
        let dir = try TemporaryDirectory()
        let book = dir.path + "/book.vcf"
        let broken = "BEGIN:VCARD\nVERSION:4.0\nEMAIL:x@example.org\n"
        try broken.write(toFile: book, atomically: true, encoding: .utf8)
        #expect(throws: AddressBookError.self) {
            try AddressBookEditor.add(ContactUpdate(escrow: EscrowQuestion(question: "Q?", answer: "A")), for: "y@example.org", to: book, replace: false)
        }
        #expect(try String(contentsOfFile: book, encoding: .utf8) == broken)
    }

    /// sl-classify's save (an append) and an edit take the same lock; an append
    /// after the edit lands in the new file.
    @Test func anAppendAfterAnEditLandsInTheNewBook() throws {
        let dir = try TemporaryDirectory()
        let book = dir.path + "/book.vcf"
        try Self.handWritten.write(toFile: book, atomically: true, encoding: .utf8)
        try AddressBookEditor.add(ContactUpdate(escrow: EscrowQuestion(question: "Q?", answer: "A")), for: "e@example.org", to: book, replace: false)
        try AddressBook.append(Contact(addresses: ["f@example.org"], escrow: EscrowQuestion(question: "R?", answer: "B")), toFile: book)
        let loaded = try AddressBook.load(name: "b", path: book)
        #expect(loaded.contact(for: "e@example.org") != nil && loaded.contact(for: "f@example.org") != nil)
    }

    /// The race the lock is for: an append waiting for the lock while the book is
    /// replaced (as an edit replaces it) must land in the new file, not in the one
    /// renamed away. Without the check after locking, the card would be lost.
    @Test func anAppendWaitingWhileTheBookIsReplacedLandsInTheNewBook() throws {
        let dir = try TemporaryDirectory()
        let book = dir.path + "/book.vcf"
        try Self.handWritten.write(toFile: book, atomically: true, encoding: .utf8)
        let lock = try BookLock(book)
        final class Outcome: @unchecked Sendable { var error: (any Error)?; let done = DispatchSemaphore(value: 0) }
        let outcome = Outcome()
        DispatchQueue.global().async {
            do {
                try AddressBook.append(Contact(addresses: ["f@example.org"], escrow: EscrowQuestion(question: "R?", answer: "B")), toFile: book)
            } catch {
                outcome.error = error
            }
            outcome.done.signal()
        }
        usleep(300_000)           // the append now waits for the lock on the old file
        try Self.handWritten.write(toFile: book + ".new", atomically: false, encoding: .utf8)
        #expect(rename(book + ".new", book) == 0)
        lock.release()
        outcome.done.wait()
        #expect(outcome.error == nil)
        let loaded = try AddressBook.load(name: "b", path: book)
        #expect(loaded.contact(for: "f@example.org") != nil && loaded.contact(for: "hand@example.org") != nil)
    }
}
