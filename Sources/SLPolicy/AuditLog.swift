#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage

/// `audit_log`: a file of JSON lines, syslog (facility mail, as MTAs log), or off.
public enum AuditDestination: Sendable, Equatable {
    case off, syslog
    case file(String)
}

/// Decision and delivery records, one JSON object per recipient and outcome.
/// Records carry who, what and why, never message content or secrets. Records of
/// a run are kept as encoded lines (a few hundred bytes each) and written at
/// `commit()`: to a file in one write(2) with O_APPEND, so concurrent processes
/// never interleave inside a line, and the file is opened anew for every commit,
/// so rotation needs no signal (logrotate without copytruncate: the next commit
/// creates the file again); or to syslog as LOG_MAIL|LOG_INFO, one message each.
public final class AuditLog {
    public let destination: AuditDestination
    private var lines = Bytes()
    private let formatter: ISO8601DateFormatter

    public init?(_ destination: AuditDestination, tool: String) {
        guard destination != .off else { return nil }
        self.destination = destination
        formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if destination == .syslog { Self.openSyslog(tool) }
    }

    public func timestamp(_ d: Date) -> String { formatter.string(from: d) }

    public func record(_ fields: [String: Any]) throws {
        lines += Array(try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes]))
        lines.append(0x0A)
    }

    /// Writes the records so far.
    public func commit() throws {
        guard !lines.isEmpty else { return }
        switch destination {
        case .off:
            break           // never made (init returns nil)
        case .syslog:
            for line in lines.split(separator: 0x0A) {
                String(decoding: line, as: UTF8.self).withCString { text in
                    withVaList([text]) { vsyslog(LOG_MAIL | LOG_INFO, "%s", $0) }
                }
            }
        case .file(let path):
            var fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
            if fd < 0 && errno == ENOENT {
                // The default lives in the state directory, which a first run makes.
                try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                         withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
            }
            guard fd >= 0 else {
                throw MessageError.io("cannot open the audit log \(path): \(String(cString: strerror(errno))) (set audit_log in sl.conf to a writable file, syslog, or off)")
            }
            defer { close(fd) }
            try FileDescriptorIO.writeAll(fd, lines)
        }
        // Only once written: a caller that retries a failed commit loses nothing.
        lines.removeAll()
    }

    /// openlog keeps the pointer it is given: the identity must outlive the process.
    nonisolated(unsafe) private static var identity: UnsafeMutablePointer<CChar>?
    /// Once per process (sl-portal makes a log per event).
    private static func openSyslog(_ tool: String) {
        guard identity == nil else { return }
        identity = strdup(tool)
        openlog(identity, LOG_PID, LOG_MAIL)
    }
}
