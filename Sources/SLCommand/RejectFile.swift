#if canImport(Glibc)
import Glibc
#endif
import SLMessage

/// --reject-file: malformed messages set aside as mboxrd, each as it came with an
/// `X-SL-Rejected: TOOL: REASON` field on top, so an admin can read why, mend the
/// message and feed the file again (sl-classify removes X-SL-* fields from input).
/// One write(2) with O_APPEND per message: stages of one pipeline can share a file.
public final class RejectFile {
    public let path: String
    let tool: String

    public init(path: String, tool: String) {
        self.path = path
        self.tool = tool
    }

    public func add(fromLine: Bytes?, header: Bytes, body: Spool, reason: String) throws {
        let sink = MemorySink()
        try sink.write(fromLine ?? MboxWriter.fromLine(sender: nil))
        let line = "X-SL-Rejected: \(tool): \(OneLine.of(reason))"
        // The field ends the way the message's own lines do.
        let crlf = header.firstIndex(of: 0x0A).map { $0 > 0 && header[$0 - 1] == 0x0D } ?? false
        let framed = MboxWriter(sink: sink)
        try framed.writeRaw(Array(line.utf8) + (crlf ? [0x0D, 0x0A] : [0x0A]) + header, body: body)
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw MessageError.io("cannot open the reject file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        try FileDescriptorIO.writeAll(fd, sink.bytes)
        guard fsync(fd) == 0 else { throw MessageError.io("cannot sync the reject file \(path): \(String(cString: strerror(errno)))") }
    }
}
