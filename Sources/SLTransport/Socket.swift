import Foundation

/// Why a conversation with a mail server ended early. Every case is temporary from
/// the sender's point of view except where sl-deliver decides otherwise.
public enum TransportError: Error, Equatable, CustomStringConvertible {
    case connect(String)
    case timeout(String)
    case closed(String)
    /// The server broke the protocol: garbage banner, malformed or oversized reply,
    /// STARTTLS response injection.
    case protocolViolation(String)
    case tls(String)

    public var description: String {
        switch self {
        case .connect(let s), .timeout(let s), .closed(let s), .protocolViolation(let s), .tls(let s): return s
        }
    }
}

/// A point in monotonic time by which an operation must be done.
public struct Deadline: Sendable {
    let nanoseconds: UInt64

    public static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    public init(seconds: Double) {
        nanoseconds = Self.now() + UInt64(max(0, seconds) * 1e9)
    }

    init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// The earlier of two deadlines.
    public func capped(at other: Deadline) -> Deadline {
        Deadline(nanoseconds: min(nanoseconds, other.nanoseconds))
    }

    /// Milliseconds left, at least 0.
    var remainingMilliseconds: Int32 {
        let n = Self.now()
        return n >= nanoseconds ? 0 : Int32(clamping: (nanoseconds - n) / 1_000_000)
    }

    public var hasPassed: Bool { Self.now() >= nanoseconds }
}

/// Plain TCP sockets with a deadline on every step.
enum Socket {
    /// Connects to `address` (IPv4 or IPv6 literal) and `port` before `deadline`;
    /// returns a non-blocking descriptor that the caller owns.
    static func connect(address: String, port: UInt16, deadline: Deadline) throws -> Int32 {
        var storage = sockaddr_storage()
        var length: socklen_t
        var family: Int32
        if address.contains(":") {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, address, &sa.sin6_addr) == 1 else { throw TransportError.connect("\(address) is not an IP address") }
            withUnsafeBytes(of: sa) { src in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) } }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            family = AF_INET6
        } else {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            guard inet_pton(AF_INET, address, &sa.sin_addr) == 1 else { throw TransportError.connect("\(address) is not an IP address") }
            withUnsafeBytes(of: sa) { src in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) } }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            family = AF_INET
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw TransportError.connect("cannot create a socket: \(String(cString: strerror(errno)))") }
        let where_ = family == AF_INET6 ? "[\(address)]:\(port)" : "\(address):\(port)"
        let r = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        if r != 0 {
            guard errno == EINPROGRESS else {
                let why = String(cString: strerror(errno))
                close(fd)
                throw TransportError.connect("cannot connect to \(where_): \(why)")
            }
            do {
                try wait(fd, for: Int16(POLLOUT), until: deadline, doing: "connect to \(where_)")
            } catch {
                close(fd)
                throw error
            }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 {
                close(fd)
                throw TransportError.connect("cannot connect to \(where_): \(String(cString: strerror(err)))")
            }
        }
        // Commands and data go out in whole writes; Nagle would only hold back the
        // last segment of each while the server delays its ACK.
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    /// Waits until `fd` is ready for `events` or throws a timeout at `deadline`.
    static func wait(_ fd: Int32, for events: Int16, until deadline: Deadline, doing what: String) throws {
        while true {
            let ms = deadline.remainingMilliseconds
            if ms == 0 { throw TransportError.timeout("timed out during \(what)") }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let r = poll(&p, 1, ms)
            if r > 0 { return }
            if r == 0 { throw TransportError.timeout("timed out during \(what)") }
            if errno != EINTR { throw TransportError.connect("poll failed: \(String(cString: strerror(errno)))") }
        }
    }
}
