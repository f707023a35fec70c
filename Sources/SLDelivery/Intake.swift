#if canImport(Glibc)
import Glibc
#endif
import SLMessage

/// The messages of one sl-deliver round between reading and delivery: the
/// messages themselves, routing beside them. A round is bounded (500 messages,
/// 8 MiB, see DeliverTool), so small bodies are held in memory and a large one
/// stays in the spool its reader put it in: one copy on disk, never a second.
///
/// Earlier runs took the whole input before sending and wrote it to an unlinked
/// intake file; since streams are delivered in rounds, that copy only doubled the
/// temporary space a large message takes.
public final class Intake {
    private var held: [(message: Message, envelope: Envelope)] = []

    public init() {}

    public var count: Int { held.count }

    /// Octets of message `i` (header and body).
    public func size(_ i: Int) -> Int { held[i].message.header.bytes.count + held[i].message.body.count }

    /// Appends a message and its routing. The routing travels beside the message
    /// rather than as X-SL-* fields, which are taken off here.
    public func append(_ message: Message, envelope: Envelope) throws {
        var m = message
        m.header.removeEnvelopeFields()
        m.fromLine = nil
        held.append((m, envelope))
    }

    /// Message `i` (0-based) as it was appended, without X-SL-* fields or mbox
    /// `From ` line, and its routing.
    public func message(_ i: Int) throws -> (Message, Envelope) {
        held[i]
    }
}
