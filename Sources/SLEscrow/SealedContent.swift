internal import CSodium
import Foundation
import SLMessage
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The on-disk form of a message's content: an 8-byte magic, the 24-byte secretstream
/// header, then the content in 64 KiB plaintext chunks, each sealed with
/// crypto_secretstream_xchacha20poly1305 (17 bytes of overhead) with the message id as
/// additional data. The last chunk (possibly empty) carries the FINAL tag, so
/// truncation at a chunk boundary is detected; reordering, dropping or moving a file
/// to another message's name fails authentication.
enum SealedContent {
    static let magic: [UInt8] = Array("SLESC01\n".utf8)
    static let chunkSize = 64 << 10
    static let headerBytes = Int(crypto_secretstream_xchacha20poly1305_HEADERBYTES)
    static let overhead = Int(crypto_secretstream_xchacha20poly1305_ABYTES)
    static let keyBytes = Int(crypto_secretstream_xchacha20poly1305_KEYBYTES)

    /// The file size for `plaintext` bytes of content.
    static func sealedSize(plaintext: Int) -> Int {
        magic.count + headerBytes + plaintext + overhead * (plaintext / chunkSize + 1)
    }
}

/// The secretstream state, wiped and freed when released.
final class SecretStreamState {
    let state: UnsafeMutablePointer<crypto_secretstream_xchacha20poly1305_state>

    init() {
        state = .allocate(capacity: 1)
        sodium_memzero(state, MemoryLayout<crypto_secretstream_xchacha20poly1305_state>.size)
    }

    deinit {
        sodium_memzero(state, MemoryLayout<crypto_secretstream_xchacha20poly1305_state>.size)
        state.deallocate()
    }
}

/// Encrypts a stream of bytes, a chunk at a time, handing the sealed bytes to a
/// sink (a file, or rows of the PostgreSQL store).
final class ContentSealer {
    typealias Sink = (ArraySlice<UInt8>) throws -> Void
    private let stream = SecretStreamState()
    private let sink: Sink
    private let ad: [UInt8]
    /// Plaintext waiting to fill a chunk; wiped when released.
    private let plain = SecretBytes(count: SealedContent.chunkSize)
    private var filled = 0
    private var cipher: [UInt8]
    private(set) var plaintextCount = 0

    init(key: SecretBytes, ad: [UInt8], sink: @escaping Sink) throws {
        try Sodium.requireReady()
        precondition(key.count == SealedContent.keyBytes)
        self.sink = sink
        self.ad = ad
        cipher = [UInt8](repeating: 0, count: SealedContent.chunkSize + SealedContent.overhead)
        var header = [UInt8](repeating: 0, count: SealedContent.headerBytes)
        guard crypto_secretstream_xchacha20poly1305_init_push(stream.state, &header, key.uint8) == 0 else {
            throw EscrowError.storage("cannot start sealing the content")
        }
        try write(SealedContent.magic[...])
        try write(header[...])
    }

    func append(_ bytes: ArraySlice<UInt8>) throws {
        var rest = bytes
        while !rest.isEmpty {
            // A full chunk goes out only when more bytes follow: the last chunk, full or
            // not, must carry FINAL.
            if filled == SealedContent.chunkSize { try push(final: false) }
            let n = min(rest.count, SealedContent.chunkSize - filled)
            plain.withUnsafeMutableBytes { p in
                rest.prefix(n).withUnsafeBytes { (p.baseAddress! + filled).copyMemory(from: $0.baseAddress!, byteCount: n) }
            }
            filled += n
            plaintextCount += n
            rest = rest.dropFirst(n)
        }
    }

    func finish() throws {
        try push(final: true)
        sodium_memzero(&cipher, cipher.count)
    }

    private func push(final: Bool) throws {
        var length: UInt64 = 0
        let tag = UInt8(final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
        let rc = cipher.withUnsafeMutableBufferPointer { c in
            ad.withUnsafeBufferPointer { a in
                crypto_secretstream_xchacha20poly1305_push(stream.state, c.baseAddress, &length, plain.uint8, UInt64(filled),
                                                           a.baseAddress, UInt64(a.count), tag)
            }
        }
        guard rc == 0 else { throw EscrowError.storage("cannot seal the content") }
        try write(cipher[0..<Int(length)])
        filled = 0
    }

    private func write(_ bytes: ArraySlice<UInt8>) throws { try sink(bytes) }
}

/// Decrypts sealed content chunk by chunk; each chunk is authenticated before
/// `output` sees it.
enum ContentOpener {
    /// Fills as much of the buffer as it can; 0 at the end of the content.
    typealias Source = (UnsafeMutableRawBufferPointer) throws -> Int

    static func open(source: Source, key: SecretBytes, ad: [UInt8], output: (ArraySlice<UInt8>) throws -> Void) throws {
        try Sodium.requireReady()
        var head = [UInt8](repeating: 0, count: SealedContent.magic.count + SealedContent.headerBytes)
        guard try readFull(source, into: &head) == head.count else { throw EscrowError.corrupt("truncated header") }
        guard Array(head[0..<SealedContent.magic.count]) == SealedContent.magic else {
            throw EscrowError.corrupt("not a sealed content file")
        }
        let stream = SecretStreamState()
        let initialised = head.withUnsafeBufferPointer {
            crypto_secretstream_xchacha20poly1305_init_pull(stream.state, $0.baseAddress! + SealedContent.magic.count, key.uint8)
        }
        guard initialised == 0 else { throw EscrowError.corrupt("bad stream header") }

        var cipher = [UInt8](repeating: 0, count: SealedContent.chunkSize + SealedContent.overhead)
        let plain = SecretBytes(count: SealedContent.chunkSize)
        var slice = [UInt8](repeating: 0, count: SealedContent.chunkSize)
        defer { sodium_memzero(&slice, slice.count) }
        while true {
            let got = try readFull(source, into: &cipher)
            guard got >= SealedContent.overhead else { throw EscrowError.corrupt("truncated") }
            var length: UInt64 = 0
            var tag: UInt8 = 0
            let rc = cipher.withUnsafeBufferPointer { c in
                ad.withUnsafeBufferPointer { a in
                    crypto_secretstream_xchacha20poly1305_pull(stream.state, plain.mutableUInt8, &length, &tag,
                                                               c.baseAddress, UInt64(got), a.baseAddress, UInt64(a.count))
                }
            }
            guard rc == 0 else { throw EscrowError.corrupt("a chunk fails authentication") }
            let final = tag == UInt8(crypto_secretstream_xchacha20poly1305_TAG_FINAL)
            guard final || tag == UInt8(crypto_secretstream_xchacha20poly1305_TAG_MESSAGE) else {
                throw EscrowError.corrupt("unexpected chunk tag")
            }
            if final {
                var probe = [UInt8](repeating: 0, count: 1)
                guard try readFull(source, into: &probe) == 0 else { throw EscrowError.corrupt("data after the final chunk") }
            } else if got < cipher.count {
                throw EscrowError.corrupt("truncated")
            }
            let n = Int(length)
            // Handed over in a reused array, not the secure buffer: the caller needs a slice.
            plain.withUnsafeBytes { p in slice.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: p[0..<n])) } }
            if n > 0 { try output(slice[0..<n]) }
            if final { return }
        }
    }

    /// Reads until `buffer` is full or the content ends; the count read.
    static func readFull(_ source: Source, into buffer: inout [UInt8]) throws -> Int {
        var done = 0
        let total = buffer.count
        while done < total {
            let n = try buffer.withUnsafeMutableBytes { try source(UnsafeMutableRawBufferPointer(rebasing: $0[done...])) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// A file descriptor as a source.
    static func reading(_ fd: Int32) -> Source {
        { buffer in
            while true {
                let n = read(fd, buffer.baseAddress, buffer.count)
                if n >= 0 { return n }
                if errno != EINTR {
                    throw EscrowError.storage("cannot read sealed content: \(String(cString: strerror(errno)))")
                }
            }
        }
    }
}
