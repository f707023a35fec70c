#if canImport(Glibc)
import Glibc
#endif
import SLMessage

/// Output that reaches stdout only when the whole run succeeded: everything is
/// written to an unlinked temporary file first and copied out at `commit()`. A tool
/// that fails part way writes nothing, so Postfix or procmail keeps the message.
public final class StagedOutput {
    private let fd: Int32
    public let sink: FileDescriptorSink

    public init() throws {
        fd = try TemporaryFile.openUnlinked()
        sink = FileDescriptorSink(fd: fd)
    }

    deinit { close(fd) }

    /// Copies the staged bytes to `destination` (stdout by default).
    public func commit(to destination: Int32 = 1) throws {
        try sink.flush()
        guard lseek(fd, 0, SEEK_SET) == 0 else { throw MessageError.io("cannot rewind the staged output") }
        var buffer = Bytes(repeating: 0, count: 1 << 16)
        while true {
            let n = try FileDescriptorIO.read(fd, into: &buffer, count: buffer.count)
            if n == 0 { break }
            try buffer.withUnsafeBytes { try FileDescriptorIO.writeAll(destination, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }
}
