import Foundation
import SLEscrow
import SLMessage
import Testing

/// Secure replies (reserved, confirmed or given back, counted against the limit)
/// and SecureSend messages held for their sender's link.
@Suite struct RepliesAndInboundTests {
    @Test(arguments: Backend.allCases) func repliesAreCountedAgainstTheLimitAndFailedOnesGiveTheirPlaceBack(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let packed = try store.pack(try message(multipartMessage), sender: "alice@example.org",
                                    recipients: [EscrowRecipient(address: "bob@example.net", verification: .question("q", answerKey("a")))],
                                    created: created, expires: expires)
        let first = try store.reserveReply(id: packed.id, index: 0, maximum: 2, now: during)
        let second = try store.reserveReply(id: packed.id, index: 0, maximum: 2, now: during)
        #expect(escrowError { _ = try store.reserveReply(id: packed.id, index: 0, maximum: 2, now: during) } == .replyLimit(2))
        try store.cancelReply(second)
        try store.confirmReply(first, size: 1234, now: during)
        let third = try store.reserveReply(id: packed.id, index: 0, maximum: 2, now: during)
        try store.confirmReply(third, size: 99, now: during)
        #expect(try store.replies(id: packed.id, index: 0).map(\.size) == [1234, 99])
        #expect(try store.status(id: packed.id).recipients[0].replies.count == 2)
        #expect(escrowError { _ = try store.reserveReply(id: packed.id, index: 0, maximum: 2, now: during) } == .replyLimit(2))
    }

    @Test(arguments: Backend.allCases) func aHeldMessageIsSealedReleasedOnceByItsLinkAndDestroyed(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let m = try message(multipartMessage)
        let held = try store.holdInbound(m, sender: "Visitor@Example.com", recipient: "staff@clinic.example", now: during,
                                         expires: during.addingTimeInterval(3600))
        // Sealed: the marker text is nowhere in the store's files.
        let raw = RawStore(backend, dir)
        let marker = Data("Test results".utf8)
        #expect(!(try raw.everything()).contains { $0.data.range(of: marker) != nil || $0.data.range(of: RawStore.hex(marker)) != nil })
        #expect(try raw.contentIDs() == [held.id])
        #expect(try store.verify().isEmpty)
        #expect(escrowError { _ = try store.releaseInbound(token: String(held.token.reversed()), now: during) } == .wrongToken)
        let released = try store.releaseInbound(token: held.token, now: during)
        #expect(released.sender == "visitor@example.com" && released.recipient == "staff@clinic.example")
        #expect(released.message == (try m.bytes()))
        try store.markInboundDelivered(id: held.id, now: during)
        #expect(escrowError { _ = try store.releaseInbound(token: held.token, now: during) } == .wrongToken)
        #expect(try raw.contentIDs().isEmpty)
        #expect(try store.inboundCount(sender: "visitor@example.com", since: created) == 1)
    }

    @Test(arguments: Backend.allCases) func anUnconfirmedMessageExpiresAndIsPurged(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let held = try store.holdInbound(try message(multipartMessage), sender: "v@example.com", recipient: "s@clinic.example",
                                         now: during, expires: during.addingTimeInterval(60))
        let later = during.addingTimeInterval(120)
        #expect(escrowError { _ = try store.releaseInbound(token: held.token, now: later) } == .wrongToken)
        // Purge two hours on: the content is gone, not mistaken for a live message before.
        try store.purge(now: during)
        #expect(try RawStore(backend, dir).contentIDs() == [held.id])
        try store.purge(now: later.addingTimeInterval(7200))
        #expect(try RawStore(backend, dir).contentIDs().isEmpty)
        #expect(try store.verify().isEmpty)
        #expect(try store.inboundCount(sender: "v@example.com", since: created) == 1)
    }
}
