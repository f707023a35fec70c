import Foundation
import SLMessage

/// One message on its way to some recipients: what the SMTP client needs to know
/// before it opens a connection.
public struct Parcel: Sendable {
    /// The queue item it came from.
    public var id: String
    /// Envelope sender; empty for the null sender (delivery reports).
    public var sender: String
    public var recipients: [String]
    /// TLS-only: enforced, verified TLS or no delivery at all.
    public var requireTLS: Bool
    /// The message as it goes on the wire: no X-SL-* fields, no mbox framing.
    public var message: Message
    /// Size in octets after CRLF canonicalisation (for SIZE).
    public var size: Int
    /// Has 8-bit octets (needs 8BITMIME).
    public var eightBit: Bool
    /// Has non-ASCII addresses or header fields (needs SMTPUTF8, RFC 6531).
    public var international: Bool

    public init(id: String, sender: String, recipients: [String], requireTLS: Bool, message: Message) throws {
        self.id = id
        self.sender = sender
        self.recipients = recipients
        self.requireTLS = requireTLS
        var m = message
        m.fromLine = nil
        m.header.removeEnvelopeFields()
        self.message = m
        var size = 0, eight = false, previous: UInt8 = 0x0A
        func scan(_ bytes: some Sequence<UInt8>) {
            for b in bytes {
                if b == 0x0A && previous != 0x0D { size += 1 }
                if b >= 0x80 { eight = true }
                size += 1
                previous = b
            }
        }
        let header = m.header.bytes
        scan(header)
        let headerEightBit = eight
        try m.body.forEachChunk { scan($0) }
        self.size = size
        self.eightBit = eight
        self.international = headerEightBit || !sender.utf8.allSatisfy { $0 < 0x80 }
            || recipients.contains { !$0.utf8.allSatisfy { $0 < 0x80 } }
    }

    /// The recipients' domains, lowercased, in first-seen order.
    public var domains: [String] {
        var seen = Set<String>(), out: [String] = []
        for r in recipients { let d = Parcel.domain(of: r); if seen.insert(d).inserted { out.append(d) } }
        return out
    }

    public static func domain(of address: String) -> String {
        guard let at = address.lastIndex(of: "@") else { return "" }
        return address[address.index(after: at)...].lowercased()
    }
}

/// The SMTP DATA encoding of a message: CRLF line ends and dot-stuffing (RFC 5321
/// 4.5.2), streamed, so a 100 MB message never sits in memory.
struct DataEncoder {
    private var atLineStart = true
    private var lastWasCR = false
    var output: [UInt8] = []

    mutating func encode(_ bytes: some Sequence<UInt8>) {
        for b in bytes {
            if atLineStart && b == UInt8(ascii: ".") { output.append(UInt8(ascii: ".")) }
            if b == 0x0A && !lastWasCR { output.append(0x0D) }
            output.append(b)
            lastWasCR = b == 0x0D
            atLineStart = b == 0x0A
        }
    }

    /// The end of the data: a line break if the message lacks a final one, then ".".
    mutating func finish() {
        if !atLineStart { output += [0x0D, 0x0A] }
        output += Array(".\r\n".utf8)
    }
}
