#if canImport(Glibc)
import Glibc
#endif
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
    /// TLS-only with `tls_min_verdict = dane`: the TLS must be authenticated by
    /// the MX host's validated TLSA records, WebPKI is not enough.
    public var requireDANE = false
    /// RFC 8689 section 5: the message says `TLS-Required: No` and is not TLS-only,
    /// so the recipient domain's TLS policies (MTA-STS, DANE) do not hold it back:
    /// it goes with opportunistic TLS, as to a domain without them.
    public var ignoresTLSPolicy: Bool { !requireTLS && TLSRequiredField.optsOut(message.header) }
    /// The message as it goes on the wire: no X-SL-* fields, no mbox framing.
    public var message: Message
    /// Size in octets after CRLF canonicalisation (for SIZE).
    public var size: Int
    /// Has 8-bit octets (needs 8BITMIME).
    public var eightBit: Bool
    /// Has non-ASCII addresses or header fields (needs SMTPUTF8, RFC 6531).
    public var international: Bool
    /// What the delivery record keys on, with each recipient: the digest of the
    /// message the copy was made from when the routing carries one, else the
    /// Message-ID and the size on the wire.
    public var recordKey: (id: String, size: Int)?

    public init(id: String, sender: String, recipients: [String], requireTLS: Bool, message: Message, digest: String? = nil) throws {
        self.id = id
        self.sender = sender
        self.recipients = recipients
        self.requireTLS = requireTLS
        var m = message
        m.fromLine = nil
        m.header.removeEnvelopeFields()
        self.message = m
        var scan = WireScan()
        scan.add(m.header.bytes[...])
        let headerEightBit = scan.eightBit
        try m.body.forEachChunk { scan.add($0) }
        self.size = scan.size
        recordKey = digest.map { ("sha256:" + $0, 0) } ?? m.header["Message-ID"].map { ($0, scan.size) }
        self.eightBit = scan.eightBit
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

/// A message's size on the wire (bare LFs become CRLF) and whether it has 8-bit
/// octets, counted chunk by chunk. Works on the raw buffer: this runs over every
/// byte of every message, and element-wise Sequence iteration was a quarter of
/// sl-deliver's time.
struct WireScan {
    private(set) var size = 0
    private(set) var eightBit = false
    private var previous: UInt8 = 0x0A

    mutating func add(_ chunk: ArraySlice<UInt8>) {
        guard !chunk.isEmpty else { return }
        var size = chunk.count, high: UInt8 = 0, previous = self.previous
        chunk.withUnsafeBufferPointer { buffer in
            let base = buffer.baseAddress!, n = buffer.count
            for b in buffer { high |= b }           // vectorises
            var i = 0
            while i < n, let p = memchr(base + i, 0x0A, n - i) {
                let lf = base.distance(to: p.assumingMemoryBound(to: UInt8.self))
                if (lf > 0 ? base[lf - 1] : previous) != 0x0D { size += 1 }
                i = lf + 1
            }
            previous = base[n - 1]
        }
        self.size += size
        self.previous = previous
        if high >= 0x80 { eightBit = true }
    }
}

/// The SMTP DATA encoding of a message: CRLF line ends and dot-stuffing (RFC 5321
/// 4.5.2), streamed, so a 100 MB message never sits in memory. Copies whole runs
/// between the octets that need attention rather than one octet at a time.
struct DataEncoder {
    private var atLineStart = true
    private var lastWasCR = false
    var output: [UInt8] = []

    mutating func encode(_ chunk: ArraySlice<UInt8>) {
        guard !chunk.isEmpty else { return }
        var atLineStart = self.atLineStart, lastWasCR = self.lastWasCR
        var output = self.output
        self.output = []
        output.reserveCapacity(output.count + chunk.count + chunk.count / 32 + 2)
        chunk.withUnsafeBufferPointer { buffer in
            // Line by line with memchr: only a line's first octet and the one before
            // its LF need looking at.
            let base = buffer.baseAddress!, n = buffer.count
            var i = 0, runStart = 0
            func flush(to end: Int) {
                output.append(contentsOf: UnsafeBufferPointer(start: base + runStart, count: end - runStart))
                runStart = end
            }
            while i < n {
                if atLineStart && base[i] == UInt8(ascii: ".") {
                    flush(to: i)
                    output.append(UInt8(ascii: "."))
                }
                guard let p = memchr(base + i, 0x0A, n - i) else { atLineStart = false; break }
                let lf = base.distance(to: p.assumingMemoryBound(to: UInt8.self))
                if (lf > 0 ? base[lf - 1] == 0x0D : lastWasCR) == false {
                    flush(to: lf)
                    output.append(0x0D)
                }
                atLineStart = true
                i = lf + 1
            }
            flush(to: n)
            lastWasCR = base[n - 1] == 0x0D
        }
        self.output = output
        self.atLineStart = atLineStart
        self.lastWasCR = lastWasCR
    }

    mutating func encode(_ bytes: [UInt8]) { encode(bytes[...]) }

    /// The end of the data: a line break if the message lacks a final one, then ".".
    mutating func finish() {
        if !atLineStart { output += [0x0D, 0x0A] }
        output += Array(".\r\n".utf8)
    }
}
