import Foundation

/// What a stage does with a copy whose method it cannot carry out for some of its
/// recipients (DESIGN: fail per recipient, not per message). Each stage resolves
/// its recipients one by one through `attempt`; a `RecipientRefusal` leaves that
/// recipient out instead of failing the stream. `finish` then gives the copy back
/// with the remaining recipients in its routing (nil when none is left) and the
/// delivery report to the sender for the ones left out. Anything else a recipient
/// throws (a temporary failure, a broken configuration) still stops the stream.
public struct RecipientRefusals {
    /// Where the line for the admin goes (stderr, in the tools).
    let warn: (String) -> Void
    public private(set) var failures: [DeliveryReport.Failure] = []

    public init(warn: @escaping (String) -> Void) { self.warn = warn }

    var refused: Set<String> { Set(failures.map { $0.recipient.lowercased() }) }

    /// Runs `resolve` for one recipient; nil when the recipient is refused.
    public mutating func attempt<T>(_ recipient: String, _ resolve: () throws -> T) throws -> T? {
        do {
            return try resolve()
        } catch let refusal as any RecipientRefusal {
            failures.append(.init(recipient: recipient, status: refusal.refusalStatus, diagnostic: refusal.refusalReason))
            return nil
        }
    }

    /// The copy for the recipients that are left, and the report for the others.
    /// With nothing refused, the copy comes back as it was.
    public func finish(_ message: Message, _ envelope: Envelope, hostname: String) throws -> (copy: Message?, report: Message?) {
        guard !failures.isEmpty else { return (message, nil) }
        let out = refused
        var routing = envelope
        routing.recipients.removeAll { out.contains($0.address.lowercased()) }
        var copy: Message? = nil
        if !routing.recipients.isEmpty {
            var m = message
            try routing.write(into: &m.header)
            copy = m
        }
        let names = failures.map(\.recipient).joined(separator: ", ")
        guard !envelope.sender.isEmpty else {
            // A bounce cannot bounce (RFC 5321 4.5.5): say so where the admin looks.
            warn("message \(message.index): \(names) left out (\(failures.map(\.diagnostic).joined(separator: "; "))); the null sender gets no report")
            return (copy, nil)
        }
        warn("message \(message.index): \(names) left out (\(failures.map(\.diagnostic).joined(separator: "; "))); reported to \(envelope.sender)")
        var original = message
        original.header.removeEnvelopeFields()
        let report = try DeliveryReport.routed(for: original, sender: envelope.sender, account: envelope.account,
                                               hostname: hostname, date: Date(), failures: failures,
                                               explanation: DeliveryReport.stageExplanation)
        return (copy, report)
    }

    /// `finish` as the list of messages a stage passes on, given what it makes of
    /// the copy for the remaining recipients.
    public func finish(_ message: Message, _ envelope: Envelope, hostname: String,
                       transform: (Message) throws -> [Message]) throws -> [Message] {
        let (copy, report) = try finish(message, envelope, hostname: hostname)
        var out = try copy.map(transform) ?? []
        if let report { out.append(report) }
        return out
    }
}
