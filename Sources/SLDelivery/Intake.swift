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
    private struct Record { var offset: Int; var header: Int; var body: Int; var index: Int }
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

    public func append(_ message: Message) throws {
        let header = message.header.bytes
        records.append(Record(offset: written + pending.count, header: header.count, body: message.body.count, index: message.index))
        pending += header
        if pending.count >= Self.blockSize { try flush() }
        try message.body.forEachChunk { chunk in
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

    /// Message `i` (0-based) as it was appended, less its mbox `From ` line. A
    /// small body comes back in memory, a large one in a spool of its own.
    public func message(_ i: Int) throws -> Message {
        try flush()
        let r = records[i]
        let headerBytes = try read(at: r.offset, count: r.header)
        let scan: HeaderSection.Scan
        do { scan = try HeaderSection.scan(headerBytes[...]) } catch {
            throw MessageError.io("intake: message \(r.index) no longer parses: \(error)")
        }
        let body: Spool
        if r.body <= Spool.defaultMemoryLimit {
            body = Spool(try read(at: r.offset + r.header, count: r.body))
        } else {
            body = Spool()
            var done = 0
            while done < r.body {
                let n = min(1 << 20, r.body - done)
                try body.append(try read(at: r.offset + r.header + done, count: n))
                done += n
            }
        }
        return Message(header: scan.header, body: body, index: r.index)
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
