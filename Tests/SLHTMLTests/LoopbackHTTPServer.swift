#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A small HTTP server on 127.0.0.1 for the browser test, one thread per
/// connection and `Connection: close`. It records every connection, with the
/// request's target and Referer when one arrives: a browser that so much as opens
/// a connection (a preconnect) is seen.
final class LoopbackHTTPServer: @unchecked Sendable {
    struct Request: Sendable {
        var target: String?     // nil: the connection sent no request
        var referer: String?
    }

    struct Response: Sendable {
        var status: Int
        var contentType = "text/plain"
        var body: [UInt8] = []
    }

    let port: UInt16
    private let listener: Int32
    private let respond: @Sendable (String) -> Response
    private let lock = NSLock()
    private var recorded: [Request] = []

    init(respond: @escaping @Sendable (String) -> Response) throws {
        self.respond = respond
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ScanFailure(description: "socket: \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 128) == 0 else { close(fd); throw ScanFailure(description: "bind/listen: \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = UInt16(bigEndian: address.sin_port)
        Thread { [self] in acceptLoop() }.start()
    }

    /// Every connection so far, in the order they were answered.
    var requests: [Request] {
        lock.lock()
        defer { lock.unlock() }
        return recorded
    }

    /// Stops accepting; connections under way finish on their own.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func acceptLoop() {
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                if errno == EINTR { continue }
                return   // stopped
            }
            Thread { [self] in serve(connection) }.start()
        }
    }

    private func serve(_ connection: Int32) {
        defer { close(connection) }
        // A connection that sends nothing (a preconnect) is given up after 2 s.
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while head.count < 65536, !containsHeaderEnd(head) {
            let n = read(connection, &buffer, buffer.count)
            if n <= 0 { break }
            head += buffer[..<n]
        }
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        let parts = lines.first?.split(separator: " ") ?? []
        guard parts.count >= 2 else {
            record(Request(target: nil, referer: nil))
            return
        }
        let target = String(parts[1])
        let referer = lines.dropFirst().first { $0.lowercased().hasPrefix("referer:") }
            .map { String($0.dropFirst("referer:".count)).trimmingCharacters(in: .whitespaces) }
        record(Request(target: target, referer: referer))
        let response = respond(target)
        var reply = Array("HTTP/1.1 \(response.status) X\r\nContent-Type: \(response.contentType)\r\nContent-Length: \(response.body.count)\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n".utf8)
        reply += response.body
        reply.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let n = send(connection, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                if n <= 0 { break }
                sent += n
            }
        }
    }

    private func containsHeaderEnd(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 4 && (0...(bytes.count - 4)).contains { bytes[$0..<($0 + 4)].elementsEqual([13, 10, 13, 10]) }
    }

    private func record(_ request: Request) {
        lock.lock()
        recorded.append(request)
        lock.unlock()
    }
}
