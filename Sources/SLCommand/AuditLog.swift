#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage

/// Decision records as JSON lines, appended to the file sl.conf names. Records carry
/// who, what and why, never message content or secrets. Each batch is one write(2)
/// with O_APPEND, so concurrent processes do not interleave inside a line.
public struct AuditLog {
    public let path: String
    public init(path: String) { self.path = path }

    public func append(_ records: [[String: Any]]) throws {
        guard !records.isEmpty else { return }
        var bytes = Bytes()
        for r in records {
            bytes += Array(try JSONSerialization.data(withJSONObject: r, options: [.sortedKeys, .withoutEscapingSlashes]))
            bytes.append(0x0A)
        }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            throw MessageError.io("cannot open the audit log \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        try FileDescriptorIO.writeAll(fd, bytes)
    }

    public static func timestamp(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: d)
    }
}
