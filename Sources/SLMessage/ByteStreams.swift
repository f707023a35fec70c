#if canImport(Glibc)
import Glibc
#endif

/// Something messages can be read from: a file descriptor or bytes in memory.
public protocol ByteSource {
    /// Reads up to `max` bytes into `buffer` (replacing its contents); empty at the end.
    mutating func read(max: Int) throws -> Bytes
}

public struct FileDescriptorSource: ByteSource {
    let fd: Int32
    /// Called when a read would wait for input (nothing is ready), then every
    /// quarter second until input comes: a stage passes on what it has done
    /// before it waits, and sees a request to stop while it waits. An error it
    /// throws ends the read.
    public var whileWaiting: (() throws -> Void)?
    public init(fd: Int32, whileWaiting: (() throws -> Void)? = nil) {
        self.fd = fd
        self.whileWaiting = whileWaiting
    }
    public mutating func read(max: Int) throws -> Bytes {
        if let whileWaiting {
            var timeout: Int32 = 0
            while true {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&p, 1, timeout)
                if ready == 1 || (ready < 0 && errno != EINTR) { break }
                try whileWaiting()
                timeout = 250
            }
        }
        var buffer = Bytes(repeating: 0, count: max)
        let n = try FileDescriptorIO.read(fd, into: &buffer, count: max)
        buffer.removeSubrange(n...)
        return buffer
    }
}

public struct MemorySource: ByteSource {
    var bytes: Bytes
    var offset = 0
    public init(_ bytes: Bytes) { self.bytes = bytes }
    public mutating func read(max: Int) throws -> Bytes {
        let end = min(bytes.count, offset + max)
        defer { offset = end }
        return Array(bytes[offset..<end])
    }
}

/// Splits a byte source into lines, each with its terminator. A line longer than
/// `maxPiece` comes out in several pieces so that a hostile input with no line breaks
/// never has to be held whole; `atLineStart` says whether a piece begins a line.
public struct LineReader<Source: ByteSource> {
    var source: Source
    var buffer = Bytes()
    var position = 0
    var eof = false
    public private(set) var atLineStart = true
    let maxPiece: Int

    public init(_ source: Source, maxPiece: Int = 64 << 10) {
        self.source = source
        self.maxPiece = maxPiece
    }

    /// The next piece: a whole line (ending in LF) or up to `maxPiece` bytes of one.
    /// Returns nil at the end of input. `startsLine` is true when the piece is the start
    /// of a line.
    public mutating func next() throws -> (piece: ArraySlice<UInt8>, startsLine: Bool)? {
        while true {
            if let lf = lineFeed(), lf - position < maxPiece {
                return take(upTo: lf + 1)
            }
            if buffer.count - position >= maxPiece { return take(upTo: position + maxPiece) }
            if eof {
                return position < buffer.count ? take(upTo: buffer.count) : nil
            }
            if position > 0 {
                buffer.removeSubrange(0..<position)
                position = 0
            }
            let more = try source.read(max: 64 << 10)
            if more.isEmpty { eof = true } else { buffer += more }
        }
    }

    /// Several whole lines at once, for a body: those already buffered that follow
    /// each other up to (not including) one that is incomplete, or (when `mbox`)
    /// one that is empty or starts with "F" or ">" (a possible `From ` line, quoted
    /// or not). Nil when there is no such run at the current position; `next()`
    /// then takes one line as usual. A line at a time cost a third of reading.
    public mutating func nextRun(mbox: Bool) -> ArraySlice<UInt8>? {
        guard atLineStart else { return nil }
        let end: Int = buffer.withUnsafeBufferPointer { b in
            let base = b.baseAddress!, limit = min(b.count, position + maxPiece)
            var i = position
            while i < limit {
                if mbox {
                    let first = base[i]
                    if first == ASCII.lf || first == UInt8(ascii: "F") || first == ASCII.greaterThan { break }
                }
                guard let p = memchr(base + i, Int32(ASCII.lf), limit - i) else { break }
                i = base.distance(to: p.assumingMemoryBound(to: UInt8.self)) + 1
            }
            return i
        }
        guard end > position else { return nil }
        defer { position = end }
        return buffer[position..<end]
    }

    /// The next LF at or after `position` within `maxPiece`: memchr, because this
    /// runs once per line of every message.
    private func lineFeed() -> Int? {
        buffer.withUnsafeBufferPointer { b in
            let n = min(b.count - position, maxPiece)
            guard n > 0, let p = memchr(b.baseAddress! + position, Int32(ASCII.lf), n) else { return nil }
            return b.baseAddress!.distance(to: p.assumingMemoryBound(to: UInt8.self))
        }
    }

    private mutating func take(upTo end: Int) -> (piece: ArraySlice<UInt8>, startsLine: Bool) {
        let piece = buffer[position..<end]
        position = end
        let starts = atLineStart
        atLineStart = piece.last == ASCII.lf
        return (piece, starts)
    }
}

/// Where messages are written: stdout, a staging file, or memory (tests).
public protocol ByteSink: AnyObject {
    func write(_ bytes: ArraySlice<UInt8>) throws
}

extension ByteSink {
    public func write(_ bytes: Bytes) throws { try write(bytes[...]) }
}

public final class MemorySink: ByteSink {
    public private(set) var bytes = Bytes()
    public init() {}
    public func write(_ b: ArraySlice<UInt8>) throws { bytes += b }
}

/// A buffered writer to a file descriptor.
public final class FileDescriptorSink: ByteSink {
    public let fd: Int32
    private var buffer = Bytes()
    public init(fd: Int32) { self.fd = fd; buffer.reserveCapacity(1 << 16) }
    public func write(_ b: ArraySlice<UInt8>) throws {
        if buffer.count + b.count > 1 << 16 { try flush() }
        if b.count >= 1 << 16 {
            try b.withUnsafeBytes { try FileDescriptorIO.writeAll(fd, $0) }
        } else {
            buffer += b
        }
    }
    public func flush() throws {
        try FileDescriptorIO.writeAll(fd, buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}
