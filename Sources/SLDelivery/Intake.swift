#if canImport(Glibc)
import Glibc
#endif
import SLMessage

/// The messages of one sl-deliver run between reading and delivery: an unlinked
/// temporary file of header sections and bodies, and their offsets.
///
/// The whole stream is read and checked before anything is sent (a malformed
/// message 500 must not leave 499 delivered behind an error exit), but putting every
/// message into the durable queue first cost three file operations and a sync per
/// message. The intake costs one sequential write instead, and needs no clean-up:
/// the file has no name, so a crash leaves nothing behind, and the caller, who got
/// no exit 0, still has its copy. Only what is not delivered at the first attempt
/// is queued durably.
public final class Intake {
    private let fd: Int32
    private var pending = Bytes()
    private var written = 0
    private struct Record { var offset: Int; var envelope: Int; var header: Int; var body: Int; var index: Int }
    private var records: [Record] = []
    private static let blockSize = 256 << 10

    public init() throws {
        fd = try TemporaryFile.openUnlinked()
        pending.reserveCapacity(Self.blockSize * 2)
    }

    deinit { close(fd) }

    public var count: Int { records.count }

    /// Octets of message `i` (header and body).
    public func size(_ i: Int) -> Int { records[i].header + records[i].body }

    /// Appends a message and its routing. The routing travels beside the message,
    /// in a compact form, rather than as X-SL-* fields: writing, parsing and
    /// removing those again cost a fifth of reading a stream.
    public func append(_ message: Message, envelope: Envelope) throws {
        var m = message
        m.header.removeEnvelopeFields()
        let routing = Self.encode(envelope)
        let header = m.header.bytes
        records.append(Record(offset: written + pending.count, envelope: routing.count, header: header.count,
                              body: m.body.count, index: m.index))
        pending += routing
        pending += header
        if pending.count >= Self.blockSize { try flush() }
        try m.body.forEachChunk { chunk in
            pending += chunk
            if pending.count >= Self.blockSize { try flush() }
        }
    }

    private func flush() throws {
        guard !pending.isEmpty else { return }
        try FileDescriptorIO.writeAll(fd, pending)
        written += pending.count
        pending.removeAll(keepingCapacity: true)
    }

    /// Message `i` (0-based) as it was appended, without X-SL-* fields or mbox
    /// `From ` line, and its routing. A small body comes back in memory, a large
    /// one in a spool of its own.
    public func message(_ i: Int) throws -> (Message, Envelope) {
        try flush()
        let r = records[i]
        let routing = try read(at: r.offset, count: r.envelope + r.header)
        guard let envelope = Self.decode(routing[..<r.envelope]) else {
            throw MessageError.io("intake: the routing of message \(r.index) does not read back")
        }
        let scan: HeaderSection.Scan
        do { scan = try HeaderSection.scan(routing[r.envelope...]) } catch {
            throw MessageError.io("intake: message \(r.index) no longer parses: \(error)")
        }
        let start = r.offset + r.envelope + r.header
        let body: Spool
        if r.body <= Spool.defaultMemoryLimit {
            body = Spool(try read(at: start, count: r.body))
        } else {
            body = Spool()
            var done = 0
            while done < r.body {
                let n = min(1 << 20, r.body - done)
                try body.append(try read(at: start + done, count: n))
                done += n
            }
        }
        return (Message(header: scan.header, body: body, index: r.index), envelope)
    }

    // The routing as length-prefixed strings: sender, method, TLS, fallback,
    // account ("" for none; account names are never empty), then per recipient its
    // address, its number of parameters and their names and values; then the
    // escrow id and original Message-ID ("" for none).
    static func encode(_ e: Envelope) -> Bytes {
        var out = Bytes()
        func put(_ s: String) {
            let n = UInt32(s.utf8.count)
            out += [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)]
            out += s.utf8
        }
        for s in [e.sender, e.method.rawValue, e.tls.rawValue, e.fallback.rawValue, e.account ?? ""] { put(s) }
        put(String(e.recipients.count))
        for r in e.recipients {
            put(r.address)
            put(String(r.parameters.count))
            for p in r.parameters { put(p.key.rawValue); put(p.value) }
        }
        put(e.escrowID ?? "")
        put(e.originalMessageID ?? "")
        return out
    }

    static func decode(_ bytes: ArraySlice<UInt8>) -> Envelope? {
        var i = bytes.startIndex
        func take() -> String? {
            guard bytes.endIndex - i >= 4 else { return nil }
            let n = Int(bytes[i]) | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2]) << 16 | Int(bytes[i + 3]) << 24
            i += 4
            guard bytes.endIndex - i >= n else { return nil }
            defer { i += n }
            return String(decoding: bytes[i..<i + n], as: UTF8.self)
        }
        guard let sender = take(), let method = take().flatMap(DeliveryMethod.init(rawValue:)),
              let tls = take().flatMap(TLSRequirement.init(rawValue:)), let fallback = take().flatMap(FallbackAction.init(rawValue:)),
              let account = take(), let count = take().flatMap({ Int($0) }) else { return nil }
        var recipients: [Envelope.Recipient] = []
        for _ in 0..<count {
            guard let address = take(), let n = take().flatMap({ Int($0) }) else { return nil }
            var parameters: [(key: Envelope.RoutingKey, value: String)] = []
            for _ in 0..<n {
                guard let key = take().flatMap(Envelope.RoutingKey.init(rawValue:)), let value = take() else { return nil }
                parameters.append((key, value))
            }
            recipients.append(Envelope.Recipient(address: address, parameters: parameters))
        }
        guard let escrowID = take(), let original = take(), i == bytes.endIndex else { return nil }
        var envelope = Envelope(sender: sender, recipients: recipients, method: method, tls: tls, fallback: fallback,
                                account: account.isEmpty ? nil : account)
        envelope.escrowID = escrowID.isEmpty ? nil : escrowID
        envelope.originalMessageID = original.isEmpty ? nil : original
        return envelope
    }

    private func read(at offset: Int, count: Int) throws -> Bytes {
        var buffer = Bytes(repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, count - got, off_t(offset + got)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw MessageError.io("intake: cannot read back message at offset \(offset)") }
            got += n
        }
        return buffer
    }
}
