import Foundation
@testable import SLTransport

/// SMTP reply parsing (SLTransport/SMTPConnection.swift: readReply and readLine,
/// through a real loopback connection, since that is the only way replies come
/// in). The input is what a hostile server sends, then it closes. Invariants:
/// never traps; replies are read until an error, each checked against the input
/// lines: its code is the three digits that begin each of its lines, its lines
/// are the text after the fourth octet made printable (ASCII 0x20-0x7E), the
/// last line alone has no "-" after the code, and there are at most 200 lines of
/// at most 4096 octets; nothing is returned that the input does not hold.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // Loopback buffers hold this much without the writer waiting for the reader.
    let bytes = Array(UnsafeBufferPointer(start: data, count: min(size, 32_768)))
    let server = Listener.shared
    guard let connection = try? SMTPConnection(address: "127.0.0.1", port: server.port, connectTimeout: 5, timeout: 5) else {
        preconditionFailure("cannot connect to the loopback listener")
    }
    let peer = accept(server.fd, nil, nil)
    precondition(peer >= 0, "accept failed")
    var sent = 0
    while sent < bytes.count {
        let n = bytes.withUnsafeBytes { send(peer, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
        precondition(n > 0, "send to the client failed")
        sent += n
    }
    shutdown(peer, Int32(SHUT_WR))

    // The input's lines as readLine cuts them: at LF, one CR before it removed.
    var lines: [[UInt8]] = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map {
        $0.last == 0x0D ? Array($0.dropLast()) : Array($0)
    }
    lines.removeLast()   // what follows the last LF is no line: the server closed before ending it
    var next = 0
    while true {
        let reply: SMTPReply
        do { reply = try connection.readReply() } catch { break }
        precondition((1...SMTPConnection.maximumReplyLines).contains(reply.lines.count), "a reply of \(reply.lines.count) lines")
        precondition(next + reply.lines.count <= lines.count, "a reply with more lines than the input holds")
        for (i, text) in reply.lines.enumerated() {
            let line = lines[next + i]
            let last = i == reply.lines.count - 1
            precondition(line.count >= 3 && line.count <= SMTPConnection.maximumLineLength, "a reply line of \(line.count) octets")
            precondition(Int(String(decoding: line.prefix(3), as: UTF8.self)) == reply.code && (0...999).contains(reply.code),
                         "reply code \(reply.code) is not the line's three digits")
            precondition(line.count == 3 ? last : (line[3] == UInt8(ascii: last ? " " : "-")), "wrong continuation mark")
            precondition(text == printable(line.dropFirst(4)), "a reply line's text is not the input's")
            precondition(text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }, "a reply line is not printable")
        }
        next += reply.lines.count
    }
    withExtendedLifetime(connection) {}
    // The client closes first; the reset then leaves no TIME_WAIT behind.
    var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
    setsockopt(peer, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
    close(peer)
    return 0
}

/// One loopback listener for the whole run.
final class Listener: @unchecked Sendable {
    static let shared = Listener()
    let fd: Int32
    let port: UInt16

    init() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        precondition(ok, "cannot listen on loopback")
        self.fd = fd
        port = UInt16(bigEndian: sa.sin_port)
    }
}
