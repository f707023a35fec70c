#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage

/// The admin's hand on one queued message, as postsuper(1) and postqueue(1) give
/// it: hold and release, retry now, delete silently, or bounce (delete with a
/// delivery report to the sender). Each takes the item's lock first, so it never
/// acts on a message a delivery is working on.
extension QueueRunner {
    public enum Steering: String, Sendable { case hold, release, retry, delete, bounce }

    public struct NoSuchItem: SysexitReporting, CustomStringConvertible {
        public let id: String
        public var description: String { "no queued message \(id) (sl-deliver --list-queue shows the queue)" }
        public var sysexit: Sysexit { .noInput }
    }

    public struct ItemBusy: SysexitReporting, CustomStringConvertible {
        public let id: String
        public var description: String { "queued message \(id) is being delivered right now; try again in a moment" }
        public var sysexit: Sysexit { .tempFail }
    }

    /// One line saying what was done.
    public func steer(_ action: Steering, id: String, now: Double) throws -> String {
        guard id.allSatisfy({ $0.isHexDigit || $0 == "-" }), var item = try queue.items().first(where: { $0.id == id }) else {
            throw NoSuchItem(id: id)
        }
        guard let lock = queue.lock(id) else { throw ItemBusy(id: id) }
        switch action {
        case .hold:
            defer { queue.unlock(lock) }
            item.state.held = true
            try queue.save(item)
            return "\(id): held; sl-deliver --release \(id) lets it go again"
        case .release:
            defer { queue.unlock(lock) }
            item.state.held = nil
            item.state.nextAttempt = now
            try queue.save(item)
            return "\(id): released; the next queue run attempts it"
        case .retry:
            queue.unlock(lock)
            item.state.held = nil
            try attempt([item], now: now)
            let left = try queue.items().first { $0.id == id }
            return left == nil ? "\(id): delivered (or reported); it left the queue"
                               : "\(id): tried; still queued (\(left?.state.lastReason ?? "no reason recorded"))"
        case .delete:
            queue.remove(id)
            queue.unlock(lock)
            return "\(id): deleted; no report sent"
        case .bounce:
            defer { queue.unlock(lock) }
            let message = try queue.message(id, from: lock)
            guard let envelope = try Envelope.read(from: message.header) else { throw MessageError.malformed("queue item \(id) has no routing fields") }
            if !envelope.sender.isEmpty {
                var original = message
                original.header.removeEnvelopeFields()
                let failures = envelope.recipients.map {
                    DeliveryReport.Failure(recipient: $0.address, status: .administrativeDeletion,
                                           diagnostic: "deleted from the queue by the administrator after \(item.state.attempts) attempt(s); last: \(item.state.lastReason ?? "none")")
                }
                let report = try DeliveryReport.routed(for: original, sender: envelope.sender, account: envelope.account,
                                                       hostname: hostname, date: Date(timeIntervalSince1970: now),
                                                       failures: failures, explanation: DeliveryReport.deliveryExplanation)
                let queued = try queue.add(report, now: now)
                queue.remove(id)
                try attempt([queued], now: now)
                return "\(id): deleted; a delivery report went to \(envelope.sender)"
            }
            queue.remove(id)
            return "\(id): deleted; the null sender gets no report"
        }
    }
}
