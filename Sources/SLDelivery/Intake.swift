#if canImport(Glibc)
import Glibc
#endif
import SLMessage

/// The messages of one sl-deliver round between reading and delivery: the
/// messages themselves, routing beside them. A round is bounded (`isFull`), so
/// small bodies are held in memory and a large one stays in the spool its reader
/// put it in: one copy on disk, never a second.
///
/// Earlier runs took the whole input before sending and wrote it to an unlinked
/// intake file; since streams are delivered in rounds, that copy only doubled the
/// temporary space a large message takes.
public final class Intake {
    /// A round's bounds: memory stays flat whatever the message sizes, and every
    /// round ends with a wait for its slowest connection, so rounds are not tiny.
    public static let roundMessages = 500
    public static let roundOctets = 8 << 20

    private var held: [(message: Message, envelope: Envelope)] = []
    /// Octets of the messages held (header sections and bodies).
    public private(set) var octets = 0

    public init() {}

    public var count: Int { held.count }

    /// The round is as large as it may be: deliver it before taking more.
    public var isFull: Bool { held.count >= Self.roundMessages || octets >= Self.roundOctets }

    /// Appends a message and its routing. The routing travels beside the message
    /// rather than as X-SL-* fields, which are taken off here.
    public func append(_ message: Message, envelope: Envelope) {
        var m = message
        m.header.removeEnvelopeFields()
        m.fromLine = nil
        octets += m.header.bytes.count + m.body.count
        held.append((m, envelope))
    }

    /// Message `i` (0-based) as it was appended, without X-SL-* fields or mbox
    /// `From ` line, and its routing.
    public func message(_ i: Int) -> (Message, Envelope) {
        held[i]
    }
}
