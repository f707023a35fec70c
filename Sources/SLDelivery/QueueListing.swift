#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage

/// What `sl-deliver --list-queue` shows of each queued message, as mailq(1)
/// does: id, arrival, size, sender, the recipients still to deliver, attempts,
/// the next attempt and the last reason. Read without taking the items' locks:
/// a listing never holds up a delivery.
public struct QueueEntry: Sendable, Codable, Equatable {
    public var id: String
    public var arrival: Date
    public var size: Int
    public var sender: String
    public var recipients: [String]
    public var attempts: Int
    public var nextAttempt: Date
    public var lastReason: String?
    /// Recipients waiting for a new decision (reroute_command), not for a retry.
    public var reroute: [String]
    /// Held by the admin: not attempted until released.
    public var held: Bool
}

extension DeliveryQueue {
    /// Every queued message, oldest first; one that cannot be read is listed with
    /// what the file system knows and the reason it could not be read.
    public func listing() throws -> [QueueEntry] {
        try items().map { item in
            let path = directory + "/" + item.id + ".eml"
            var st = stat()
            let size = stat(path, &st) == 0 ? Int(st.st_size) : 0
            var sender = "", recipients: [String] = [], reason = item.state.lastReason
            do {
                let envelope = try Envelope.read(from: try message(item.id).header)
                sender = envelope?.sender ?? ""
                recipients = envelope?.recipients.map(\.address) ?? []
            } catch {
                reason = "cannot be read: \(error)"
            }
            return QueueEntry(id: item.id, arrival: Date(timeIntervalSince1970: item.state.created), size: size, sender: sender,
                              recipients: recipients, attempts: item.state.attempts,
                              nextAttempt: Date(timeIntervalSince1970: item.state.nextAttempt), lastReason: reason,
                              reroute: item.state.reroute, held: item.state.held == true)
        }
    }

    /// The listing as text (a block per message, as mailq prints) or JSON lines.
    public static func format(_ entries: [QueueEntry], json: Bool) throws -> String {
        if json {
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return try entries.map { String(decoding: try encoder.encode($0), as: UTF8.self) + "\n" }.joined()
        }
        guard !entries.isEmpty else { return "The queue is empty.\n" }
        let f = ISO8601DateFormatter()
        var out = ""
        for e in entries {
            out += "\(e.id)  \(f.string(from: e.arrival))  \(e.size) octets  from <\(e.sender)>\n"
            out += e.held ? "  HELD (sl-deliver --release \(e.id))\n" : "  attempts \(e.attempts), next \(f.string(from: e.nextAttempt))\n"
            if let r = e.lastReason { out += "  (\(OneLine.of(r)))\n" }
            for r in e.recipients { out += "  \(r)\(e.reroute.contains(r) ? "  [waiting for a new decision]" : "")\n" }
        }
        let total = entries.reduce(0) { $0 + $1.recipients.count }
        return out + "-- \(entries.count) message\(entries.count == 1 ? "" : "s"), \(total) recipient\(total == 1 ? "" : "s")\n"
    }
}
