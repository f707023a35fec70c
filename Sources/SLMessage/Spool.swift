#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A body's bytes: in memory while small, in an unlinked temporary file once it grows
/// past `memoryLimit`, so a 100 MB message never needs 100 MB of RAM. Append-only while
/// the message is read, then read-only; copies of a message share one spool.
public final class Spool: @unchecked Sendable {
    /// Bytes kept in memory before spilling to disk.
    public static let defaultMemoryLimit = 256 << 10

    private var memory = Bytes()
    private var fd: Int32 = -1
    /// Bytes bound for the file, written in large blocks: a body arrives a line at a
    /// time, and a write(2) per line made big messages crawl.
    private var pending = Bytes()
    private static let blockSize = 64 << 10
    public private(set) var count = 0
    /// The last octet appended (nil while empty): whether the body ends a line.
    public private(set) var lastOctet: UInt8?
    private let memoryLimit: Int

    public init(memoryLimit: Int = Spool.defaultMemoryLimit) {
        self.memoryLimit = memoryLimit
    }

    public convenience init(_ bytes: Bytes) {
        self.init(memoryLimit: Int.max)
        memory = bytes
        count = bytes.count
        lastOctet = bytes.last
    }

    deinit { if fd >= 0 { close(fd) } }

    public var isInMemory: Bool { fd < 0 }

    public func append<C: BidirectionalCollection>(_ bytes: C) throws where C.Element == UInt8 {
        if let last = bytes.last { lastOctet = last }
        if fd < 0 && memory.count + bytes.count <= memoryLimit {
            memory.append(contentsOf: bytes)
            count += bytes.count
            return
        }
        if fd < 0 {
            fd = try TemporaryFile.openUnlinked()
            pending = memory
            pending.reserveCapacity(Self.blockSize + memoryLimit)
            memory = []
        }
        pending.append(contentsOf: bytes)
        count += bytes.count
        if pending.count >= Self.blockSize { try flushPending() }
    }

    private func flushPending() throws {
        guard !pending.isEmpty else { return }
        try FileDescriptorIO.writeAll(fd, pending)
        pending.removeAll(keepingCapacity: true)
    }

    /// Calls `body` with successive chunks of the content, in order.
    public func forEachChunk(_ body: (ArraySlice<UInt8>) throws -> Void) throws {
        if fd < 0 {
            if !memory.isEmpty { try body(memory[...]) }
            return
        }
        try flushPending()
        var offset: off_t = 0
        var buffer = Bytes(repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw MessageError.io("reading spooled body: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            try body(buffer[0..<n])
            offset += off_t(n)
        }
    }

    /// The whole content in memory. Only for callers that know the body is small or that
    /// must have it whole (tests, small MIME parts).
    public func readAll() throws -> Bytes {
        if fd < 0 { return memory }
        var out = Bytes()
        out.reserveCapacity(count)
        try forEachChunk { out += $0 }
        return out
    }

    /// The first up to `n` bytes, without reading the whole spool.
    public func prefix(_ n: Int) throws -> Bytes {
        if fd < 0 { return Array(memory.prefix(n)) }
        try flushPending()
        let take = min(n, count)
        var buffer = Bytes(repeating: 0, count: take)
        let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, take, 0) }
        guard got == take else { throw MessageError.io("reading spooled body failed") }
        return buffer
    }
}

/// Temporary files that vanish with the process: created in $TMPDIR (or /tmp) with
/// mode 0600 and unlinked at once, so nothing is left behind even after `kill -9`.
public enum TemporaryFile {
    public static func openUnlinked() throws -> Int32 {
        let dir = environmentValue("TMPDIR") ?? "/tmp"
        var template = Array((dir + "/sl.XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw MessageError.io("cannot create a temporary file in \(dir): \(String(cString: strerror(errno)))")
        }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        return fd
    }
}

/// Loops around read(2)/write(2) that handle short writes and EINTR.
public enum FileDescriptorIO {
    public static func writeAll(_ fd: Int32, _ bytes: Bytes) throws {
        try bytes.withUnsafeBytes { try writeAll(fd, $0) }
    }

    public static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw MessageError.io("write failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    /// Reads up to `count` bytes; 0 means end of file.
    public static func read(_ fd: Int32, into buffer: inout Bytes, count: Int) throws -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw MessageError.io("read failed: \(String(cString: strerror(errno)))")
            }
            return n
        }
    }
}

/// One environment variable, unset and empty alike nil. getenv(3) rather than
/// ProcessInfo.environment, which copies the whole environment into a dictionary:
/// measurable in a filter that procmail starts once per message.
public func environmentValue(_ name: String) -> String? {
    guard let raw = getenv(name) else { return nil }
    let value = String(cString: raw)
    return value.isEmpty ? nil : value
}

/// The host name from gethostname(2), for EHLO and delivery reports (never a DNS
/// lookup: that can stall a filter at start-up); "localhost" if there is none.
public func localHostName() -> String {
    var name = [CChar](repeating: 0, count: 256)
    guard gethostname(&name, name.count - 1) == 0, name[0] != 0 else { return "localhost" }
    return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
