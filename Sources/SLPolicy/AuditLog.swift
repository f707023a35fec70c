#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage

/// Decision records as JSON lines, appended to the file sl.conf names. Records carry
/// who, what and why, never message content or secrets. Records of a run are kept as
/// encoded lines (a few hundred bytes each) and appended in one write(2) with O_APPEND,
/// so concurrent processes never interleave inside a line.
public final class AuditLog {
    public let path: String
    private var lines = Bytes()
    private let formatter: ISO8601DateFormatter

    public init(path: String) {
        self.path = path
        formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    }

    public func timestamp(_ d: Date) -> String { formatter.string(from: d) }

    public func record(_ fields: [String: Any]) throws {
        lines += Array(try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes]))
        lines.append(0x0A)
    }

    /// Appends the records of this run to the file.
    public func commit() throws {
        guard !lines.isEmpty else { return }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            throw MessageError.io("cannot open the audit log \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        try FileDescriptorIO.writeAll(fd, lines)
        lines.removeAll()
    }
}
