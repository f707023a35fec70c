import Foundation
import Testing
@testable import SLTransport

/// A one-connection server that sends fixed bytes and then holds the connection
/// open (or closes it): a scripted stand-in for table-testing the reply parser
/// with malformed, truncated, huge and hostile replies.
final class CannedServer: @unchecked Sendable {
    let port: UInt16
    private let listener: Int32

    init(sending bytes: [UInt8], thenClose: Bool) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        listener = fd
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        guard ok else { throw TransportError.connect("cannot listen") }
        port = UInt16(bigEndian: sa.sin_port)
        Thread {
            let c = accept(fd, nil, nil)
            guard c >= 0 else { return }
            var sent = 0
            while sent < bytes.count {
                let n = bytes.withUnsafeBytes { send(c, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { break }
                sent += n
            }
            if thenClose { close(c) } else { sleep(30); close(c) }
        }.start()
    }

    deinit { close(listener) }

    func greeting(timeout: Double = 3) throws -> SMTPReply {
        let c = try SMTPConnection(address: "127.0.0.1", port: port, connectTimeout: timeout, timeout: timeout)
        return try c.greeting()
    }
}

@Suite struct SMTPReplyTests {
    @Test(arguments: [
        ("220 mx.example ESMTP\r\n", 220, ["mx.example ESMTP"]),
        ("220-first\r\n220-second\r\n220 last\r\n", 220, ["first", "second", "last"]),
        ("220 bare LF is tolerated\n", 220, ["bare LF is tolerated"]),
        ("220\r\n", 220, [""]),
        ("220 \u{1B}[31mred\u{7}\r\n", 220, ["?[31mred?"]),      // escape codes made printable
        ("220 Grüße\r\n", 220, ["Gr????e"]),                        // 8-bit made printable too
    ])
    func wellFormedGreetings(input: String, code: Int, lines: [String]) throws {
        let server = try CannedServer(sending: Array(input.utf8), thenClose: false)
        let reply = try server.greeting()
        #expect(reply.code == code)
        #expect(reply.lines == lines)
    }

    @Test(arguments: [
        ("22 short\r\n", "not SMTP"),
        ("abc hello\r\n", "not SMTP"),
        ("2200 four digits\r\n", "not SMTP"),
        ("HTTP/1.1 400 Bad Request\r\n", "not SMTP"),
        ("220-a\r\n250 b\r\n", "mixed reply codes"),
        ("554 go away\r\n", "instead of 220"),
        (String(repeating: "x", count: 1 << 20), "longer than"),              // a 1 MB line
        ("220 " + String(repeating: "y", count: 5_000) + "\r\n", "longer than"),
        (String(repeating: "220-line\r\n", count: 300) + "220 end\r\n", "more than"),
    ])
    func malformedGreetingsAreProtocolViolations(input: String, words: String) throws {
        let server = try CannedServer(sending: Array(input.utf8), thenClose: false)
        do {
            let r = try server.greeting()
            Issue.record("accepted \(r)")
        } catch let e as TransportError {
            guard case .protocolViolation(let why) = e else { Issue.record("\(e)"); return }
            #expect(why.contains(words), "\(why)")
            #expect(why.count < 300)
        }
    }

    @Test(arguments: ["", "220 no line end", "220-continued\r\n"])
    func truncatedGreetingsAreClosedConnections(input: String) throws {
        let server = try CannedServer(sending: Array(input.utf8), thenClose: true)
        #expect(throws: TransportError.closed("the server closed the connection")) { try server.greeting() }
    }

    @Test func aSilentServerTimesOut() throws {
        let server = try CannedServer(sending: [], thenClose: false)
        let start = Date()
        #expect(throws: TransportError.timeout("timed out during waiting for the server's reply")) { try server.greeting(timeout: 1) }
        #expect(Date().timeIntervalSince(start) < 3)
    }

    @Test func randomBytesNeverCrashOrHang() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<40 {
            let n = Int.random(in: 0..<2_000, using: &rng)
            var bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // sometimes start like a reply, to get past the first check
            if Bool.random(using: &rng) { bytes = Array("220".utf8) + bytes }
            let server = try CannedServer(sending: bytes, thenClose: true)
            do { _ = try server.greeting(timeout: 2) } catch is TransportError {}
        }
    }

    @Test func commandsWithLineBreaksAreRefused() throws {
        let server = try CannedServer(sending: Array("220 ok\r\n".utf8), thenClose: false)
        let c = try SMTPConnection(address: "127.0.0.1", port: server.port, connectTimeout: 2, timeout: 2)
        _ = try c.greeting()
        #expect(throws: TransportError.self) { try c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>") }
        #expect(throws: TransportError.self) { try c.send("EHLO x\n") }
    }
}
