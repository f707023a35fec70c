import Foundation
@testable import SLEscrow
import SLMessage
import Testing

/// Open tracking in the store: a token is recorded only as its keyed hash, a fetch
/// of an unknown or malformed token writes nothing, the first fetch stays and the
/// last moves, and each fetched copy yields one receipt, once.
@Suite struct TrackingTests {
    func track(_ store: EscrowStore, method: String = "tls", at when: Date = created) throws -> String {
        try store.track(sender: "alice@example.org", recipients: ["bob@example.net", "carol@example.com"],
                        messageID: "<m1@example.org>", method: method, created: when)
    }

    @Test(arguments: Backend.allCases) func aFetchRecordsTheFirstAndTheLastOpen(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let token = try track(store)
        #expect(token.count == 43 && token.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        #expect(try store.trackedCopies().map(\.firstOpen) == [nil])

        #expect(try store.recordFetch(token: token, now: during))
        let later = during.addingTimeInterval(600)
        #expect(try store.recordFetch(token: token, now: later))
        let copy = try #require(try store.trackedCopies().first)
        #expect(copy.firstOpen == during && copy.lastOpen == later)
        #expect(copy.recipients == ["bob@example.net", "carol@example.com"])
        #expect(copy.messageID == "<m1@example.org>" && copy.method == "tls" && copy.sender == "alice@example.org")
        #expect(!copy.receiptSent)
    }

    @Test(arguments: Backend.allCases, ["", "short", String(repeating: "A", count: 43), String(repeating: "!", count: 43),
                                        String(repeating: "A", count: 44)])
    func anUnknownOrMalformedTokenChangesNothing(_ backend: Backend, _ token: String) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let real = try track(store)
        #expect(try !store.recordFetch(token: token, now: during))
        #expect(try store.trackedCopies().allSatisfy { $0.firstOpen == nil && $0.lastOpen == nil })
        #expect(try store.pendingOpenReceipts().isEmpty)
        // and the real token still works afterwards
        #expect(try store.recordFetch(token: real, now: during))
    }

    /// The database holds no token: whoever copies it cannot fetch the images and
    /// fake opens; and with a pepper, the hash is keyed.
    @Test(arguments: Backend.allCases) func theStoreKeepsOnlyAKeyedHashOfTheToken(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir, pepper: SecretBytes.random(32))
        let token = try track(store)
        let raw = try #require(Sodium.fromBase64url(token, count: 32)).publicCopy()
        for (name, data) in try RawStore(backend, dir).everything() {
            for needle in [Data(token.utf8), Data(raw), RawStore.hex(Data(raw))] {
                #expect(data.range(of: needle) == nil, "\(name)")
            }
        }
        #expect(try EscrowStore(location: dir).recordFetch(token: token, now: during) == false, "without the pepper")
        #expect(try store.recordFetch(token: token, now: during))
    }

    @Test(arguments: Backend.allCases) func eachFetchedCopyGetsOneReceiptOnce(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let first = try track(store, method: "pgp"), second = try track(store, method: "smime", at: created.addingTimeInterval(1))
        _ = try track(store, method: "tls", at: created.addingTimeInterval(2))       // never fetched
        try store.recordFetch(token: second, now: during)
        try store.recordFetch(token: first, now: during.addingTimeInterval(5))
        try store.recordFetch(token: second, now: during.addingTimeInterval(9))
        let pending = try store.pendingOpenReceipts()
        #expect(pending.map(\.copy.method) == ["smime", "pgp"], "in the order first fetched")
        for r in pending { try store.markOpenReceiptSent(r) }
        #expect(try store.pendingOpenReceipts().isEmpty)
        // Fetched again after the receipt: the time moves, no second receipt.
        try store.recordFetch(token: first, now: during.addingTimeInterval(60))
        #expect(try store.pendingOpenReceipts().isEmpty)
        let copies = try store.trackedCopies()
        #expect(copies.map(\.method) == ["tls", "smime", "pgp"], "newest first")
        #expect(copies.map(\.receiptSent) == [false, true, true])
        #expect(copies[2].lastOpen == during.addingTimeInterval(60) && copies[2].firstOpen == during.addingTimeInterval(5))
    }

    @Test(arguments: Backend.allCases) func theReceiptNamesTheMessageItsRecipientsAndTheFirstOpen(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        try store.recordFetch(token: try track(store), now: during)
        let copy = try #require(try store.pendingOpenReceipts().first).copy
        let receipt = try ReadReceipt.message(for: copy, from: "MAILER-DAEMON@mx.example.org", date: during)
        let text = String(decoding: try receipt.bytes(), as: UTF8.self)
        #expect(text.contains("Your message <m1@example.org> to bob@example.net, carol@example.com was opened on \(DeliveryReport.rfc5322Date(during))"))
        #expect(receipt.header["To"] == "alice@example.org")
        #expect(receipt.header["Subject"] == "Read: message to bob@example.net, carol@example.com")
        let routing = try #require(try Envelope.read(from: receipt.header))
        #expect(routing.sender.isEmpty && routing.method == .insecure && routing.recipients.map(\.address) == ["alice@example.org"])
    }

    /// A store made before open tracking gains the table on its next open.
    @Test func anOlderStoreGainsTheTable() throws {
        let dir = temporaryStoreDirectory()
        defer { cleanUp(dir) }
        let packed = try EscrowStore(location: dir).pack(try message(multipartMessage), sender: "alice@example.org",
                                                          recipients: [EscrowRecipient(address: "bob@example.net", verification: .login)],
                                                          created: created, expires: expires)
        #expect(try MessageCenterTests().runSQLite(dir + "/" + EscrowStore.databaseName, "DROP TABLE tracked;") == 0)
        let store = try EscrowStore(location: dir)
        #expect(try store.trackedCopies().isEmpty)
        #expect(try store.recordFetch(token: try track(store), now: during))
        #expect(try store.status(id: packed.id).recipients.count == 1)
    }
}
