import Foundation
import Testing
@testable import SLDelivery
import SLMessage

/// sl-deliver's failure policy (DeliveryPolicy.swift) in process: what one attempt's
/// results do to a queued item, the back-off, and the end of the lifetime.
@Suite struct QueuePolicyTests {
    struct Fixture {
        let dir: String
        let queue: DeliveryQueue
        let runner: QueueRunner
        var warnings: [String] { box.lines }
        let box = Lines()
        final class Lines: @unchecked Sendable { var lines: [String] = [] }

        init(lifetime: Double = 5 * 86_400, reroute: String? = nil) throws {
            dir = NSTemporaryDirectory() + "/sl-policy-\(UUID().uuidString)"
            queue = try DeliveryQueue(directory: dir)
            let box = self.box
            runner = QueueRunner(queue: queue, deliverer: try Deliverer(options: DeliveryOptions()), hostname: "mx.clinic.test",
                                 audit: nil, rerouteCommand: reroute, lifetime: lifetime, warn: { box.lines.append($0) })
        }

        /// A queued message to `recipients`, as sl-classify routes it.
        func enqueue(_ recipients: [String], method: DeliveryMethod = .insecure, now: Double) throws -> (QueueItem, Message, Envelope) {
            var m = try Message(bytes: Array("From: alice@clinic.test\nTo: \(recipients.joined(separator: ", "))\nSubject: s\n\nbody\n".utf8))
            let env = Envelope(sender: "alice@clinic.test", recipients: recipients.map { Envelope.Recipient(address: $0) },
                               method: method, tls: method == .tls ? .required : .opportunistic, fallback: .bounce)
            try env.write(into: &m.header)
            return (try queue.add(m, now: now), m, env)
        }

        func settle(_ item: QueueItem, _ m: Message, _ env: Envelope, _ results: [RecipientResult], now: Double) throws -> (QueueState, String?) {
            var state = item.state
            var staged: [DeliveryQueue.Staged] = []
            let report = try runner.settle(item.id, message: m, envelope: env, state: &state, results: results, now: now, staged: &staged)
            return (state, report)
        }

        /// The recipients a delivery report in the queue names.
        func reported(_ id: String) throws -> String {
            String(decoding: try queue.message(id).body.readAll(), as: UTF8.self)
        }
    }

    @Test func backOffDoublesFromFiveMinutesToFourHours() {
        #expect((1...8).map(DeliveryPolicy.backoff(after:)) == [300, 600, 1200, 2400, 4800, 9600, 14_400, 14_400])
    }

    @Test func oneAttemptSettlesEachRecipientByItsOutcome() throws {
        let f = try Fixture()
        let now = 1_800_000_000.0
        let (item, m, env) = try f.enqueue(["a@x.example", "b@x.example", "c@x.example"], now: now)
        let (state, report) = try f.settle(item, m, env, [
            RecipientResult(recipient: "a@x.example", outcome: .delivered, status: .success, reply: "250 ok"),
            RecipientResult(recipient: "b@x.example", outcome: .failed, status: try #require(EnhancedStatus(rawValue: "5.1.1")), reply: "550 5.1.1 no such user"),
            RecipientResult(recipient: "c@x.example", outcome: .deferred, status: .noAnswerFromHost, reply: "timed out"),
        ], now: now)
        // only the deferred recipient stays, with the back-off of its first attempt
        let left = try #require(try Envelope.read(from: f.queue.message(item.id).header))
        #expect(left.recipients.map(\.address) == ["c@x.example"])
        #expect(state.attempts == 1 && state.nextAttempt == now + 300 && state.lastReason == "timed out")
        // the refused recipient is reported to the sender, with the server's status
        let text = try f.reported(try #require(report))
        #expect(text.contains("Final-Recipient: rfc822; b@x.example") && text.contains("Status: 5.1.1"))
        #expect(!text.contains("a@x.example>") && !text.contains("rfc822; c@x.example"))
    }

    @Test func atTheEndOfTheLifetimeDeferredRecipientsBounceWith447() throws {
        let f = try Fixture(lifetime: 3600)
        let created = 1_800_000_000.0
        let (item, m, env) = try f.enqueue(["c@x.example"], now: created)
        let (_, report) = try f.settle(item, m, env, [
            RecipientResult(recipient: "c@x.example", outcome: .deferred, status: .noAnswerFromHost, reply: "timed out"),
        ], now: created + 3600)
        let text = try f.reported(try #require(report))
        #expect(text.contains("Status: 4.4.7") && text.contains("still undeliverable after 1 hours"), "\(text)")
        #expect(throws: (any Error).self) { try f.queue.message(item.id) }    // gone from the queue
    }

    @Test func tlsOnlyRecipientsPastTheLifetimeBounceWith5710WithoutANewDecision() throws {
        // a reroute command that would record being run
        let marker = NSTemporaryDirectory() + "/sl-rerouted-\(UUID().uuidString)"
        let f = try Fixture(lifetime: 3600, reroute: "touch \(marker)")
        let created = 1_800_000_000.0
        let (item, m, env) = try f.enqueue(["t@x.example"], method: .tls, now: created)
        let (_, report) = try f.settle(item, m, env, [
            RecipientResult(recipient: "t@x.example", outcome: .reroute, status: .cryptographicFailureNow, reply: "no verified TLS"),
        ], now: created + 7200)
        let text = try f.reported(try #require(report))
        #expect(text.contains("Status: 5.7.10"))
        #expect(!FileManager.default.fileExists(atPath: marker), "expired: not handed over again")
    }

    @Test func anUnreadableQueueIsAnErrorNotAnEmptyQueue() throws {
        let f = try Fixture()
        try FileManager.default.removeItem(atPath: f.dir)
        #expect(throws: MessageError.self) { try f.queue.items() }
    }
}
