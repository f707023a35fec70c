import Foundation

/// One SMTP reply (RFC 5321 4.2): a three-digit code and its text lines, made
/// printable (the text comes from a server we do not trust).
public struct SMTPReply: Sendable, Equatable, Codable {
    public var code: Int
    public var lines: [String]

    public init(code: Int, lines: [String]) { self.code = code; self.lines = lines }

    public var isPositive: Bool { (200..<400).contains(code) }
    public var isTemporaryFailure: Bool { (400..<500).contains(code) }
    /// The reply as one line, for messages and logs.
    public var text: String { "\(code) " + lines.joined(separator: " / ") }
}

/// A client-side SMTP conversation: plain TCP, then TLS after STARTTLS. Every read
/// and write has a deadline; nothing is pipelined around STARTTLS; what the server
/// said before TLS is forgotten after it. Owns its socket.
public final class SMTPConnection {
    /// Longest reply line we accept (RFC 5321 allows 512 octets; servers exceed it).
    static let maximumLineLength = 4_096
    /// Most lines in one reply (EHLO lists a few dozen at most).
    static let maximumReplyLines = 200

    public let address: String
    public let port: UInt16
    /// Seconds each read or write may take.
    public var timeout: Double
    /// No operation runs past this, whatever `timeout` says (the probe's per-domain limit).
    public let limit: Deadline?

    private let fd: Int32
    private var buffer: [UInt8] = []
    private var tls: TLSSession?
    public private(set) var tlsDetails: TLSDetails?
    /// EHLO keywords (upper case) with their parameters, from the latest EHLO.
    public private(set) var extensions: [String: String] = [:]

    /// Connects to `address`:`port`. Does not read the greeting; call `greeting()`.
    public init(address: String, port: UInt16, connectTimeout: Double, timeout: Double, limit: Deadline? = nil) throws {
        self.address = address
        self.port = port
        self.timeout = timeout
        self.limit = limit
        fd = try Socket.connect(address: address, port: port, deadline: Self.deadline(connectTimeout, limit))
    }

    deinit {
        tls?.shutdown()
        close(fd)
    }

    /// This end's address (RFC 8460 sending-mta-ip), as text.
    public var localAddress: String? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = Int32(storage.ss_family)
        let written: UnsafePointer<CChar>? = withUnsafePointer(to: &storage) { p in
            if family == AF_INET {
                return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a in
                    withUnsafePointer(to: a.pointee.sin_addr) { inet_ntop(AF_INET, $0, &text, socklen_t(text.count)) }
                }
            }
            return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a in
                withUnsafePointer(to: a.pointee.sin6_addr) { inet_ntop(AF_INET6, $0, &text, socklen_t(text.count)) }
            }
        }
        guard written != nil else { return nil }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func deadline(_ seconds: Double, _ limit: Deadline?) -> Deadline {
        let d = Deadline(seconds: seconds)
        return limit.map { d.capped(at: $0) } ?? d
    }

    private var next: Deadline { Self.deadline(timeout, limit) }

    /// Reads the 220 greeting. Anything else — another code, or bytes that are not
    /// an SMTP reply — is a protocol violation.
    public func greeting() throws -> SMTPReply {
        let reply = try readReply()
        guard reply.code == 220 else {
            throw TransportError.protocolViolation("the server greeted with \"\(reply.text.prefix(200))\" instead of 220")
        }
        return reply
    }

    /// Sends one command line. CR and LF inside are refused: a command never carries
    /// a second one.
    public func send(_ command: String) throws {
        guard !command.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A }) else {
            throw TransportError.protocolViolation("refusing to send a command with a line break in it")
        }
        try write(Array((command + "\r\n").utf8))
    }

    /// Sends raw bytes (the message during DATA).
    public func write(_ bytes: [UInt8]) throws {
        let deadline = next
        if let tls {
            try bytes.withUnsafeBytes { try tls.write($0, fd: fd, deadline: deadline) }
            return
        }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
            if n > 0 { done += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                try Socket.wait(fd, for: Int16(POLLOUT), until: deadline, doing: "sending to the server")
                continue
            }
            if n < 0 && errno == EINTR { continue }
            throw TransportError.closed("the connection to \(address) broke while sending: \(String(cString: strerror(errno)))")
        }
    }

    /// Sends a command and reads its reply.
    public func command(_ line: String) throws -> SMTPReply {
        try send(line)
        return try readReply()
    }

    /// EHLO; on success remembers the extensions. A 5xx to EHLO is returned, not
    /// thrown, so that the caller can decide about HELO.
    @discardableResult
    public func ehlo(_ name: String) throws -> SMTPReply {
        let reply = try command("EHLO \(name)")
        extensions = [:]
        if reply.code == 250 {
            for line in reply.lines.dropFirst() {
                let parts = line.split(separator: " ", maxSplits: 1)
                guard let key = parts.first else { continue }
                extensions[key.uppercased()] = parts.count > 1 ? String(parts[1]) : ""
            }
        }
        return reply
    }

    /// STARTTLS (RFC 3207): sends the command alone, requires 220, requires that the
    /// server sent nothing after the 220 (response injection), does the handshake and
    /// forgets the extensions learnt in plaintext: send EHLO again afterwards.
    /// With `dane`, the certificate is judged by those TLSA records alone.
    /// - Returns: the handshake details; the caller judges `verified`.
    public func startTLS(context: TLSClientContext, serverName: String, verifyName: String,
                         dane: DANEAuthentication? = nil) throws -> TLSDetails {
        let reply = try command("STARTTLS")
        guard reply.code == 220 else {
            throw STARTTLSRefused(reply: reply)
        }
        // Anything already received, or waiting in the socket, came from before the
        // TLS handshake but would be read as if it came after it.
        var peek: UInt8 = 0
        if !buffer.isEmpty || recv(fd, &peek, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) > 0 {
            throw TransportError.protocolViolation("the server sent data after its 220 reply to STARTTLS (response injection); connection dropped")
        }
        let session = try TLSSession(context: context, fd: fd, serverName: serverName, verifyName: verifyName, dane: dane)
        let details = try session.handshake(fd: fd, deadline: next)
        tls = session
        tlsDetails = details
        extensions = [:]
        return details
    }

    /// TLS from the first byte (port 465, RFC 8314): call before `greeting()`.
    public func startImplicitTLS(context: TLSClientContext, serverName: String) throws -> TLSDetails {
        let session = try TLSSession(context: context, fd: fd, serverName: serverName, verifyName: serverName)
        let details = try session.handshake(fd: fd, deadline: next)
        tls = session
        tlsDetails = details
        return details
    }

    /// True when nothing is waiting to be read: an idle connection the server has
    /// not closed (a close, a 421 or TLS close_notify all make the socket readable).
    /// Checked before a kept connection carries more mail.
    public var isIdle: Bool {
        guard buffer.isEmpty else { return false }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) == 0
    }

    /// QUIT, best effort: the answer does not matter.
    public func quit() {
        let saved = timeout
        timeout = min(timeout, 2)
        _ = try? command("QUIT")
        timeout = saved
    }

    /// Reads one complete reply, possibly multi-line.
    public func readReply() throws -> SMTPReply {
        var code: Int? = nil
        var lines: [String] = []
        while true {
            let line = try readLine()
            guard line.count >= 3, line.prefix(3).allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  line.count == 3 || line[3] == UInt8(ascii: " ") || line[3] == UInt8(ascii: "-") else {
                throw TransportError.protocolViolation("the server's reply is not SMTP: \"\(printable(line.prefix(80)))\"")
            }
            let c = Int(String(decoding: line.prefix(3), as: UTF8.self))!
            if let code, code != c {
                throw TransportError.protocolViolation("the server mixed reply codes \(code) and \(c) in one reply")
            }
            code = c
            lines.append(printable(line.dropFirst(4)))
            if line.count == 3 || line[3] == UInt8(ascii: " ") { return SMTPReply(code: c, lines: lines) }
            if lines.count >= Self.maximumReplyLines {
                throw TransportError.protocolViolation("the server's reply has more than \(Self.maximumReplyLines) lines")
            }
        }
    }

    private var lineTooLong: TransportError {
        .protocolViolation("the server sent a reply line longer than \(Self.maximumLineLength) bytes")
    }

    /// One line without its CRLF (a bare LF is accepted as the end too).
    private func readLine() throws -> [UInt8] {
        var scanned = 0
        while true {
            if let nl = buffer[scanned...].firstIndex(of: 0x0A) {
                guard nl <= Self.maximumLineLength else { throw lineTooLong }
                var line = Array(buffer[..<nl])
                buffer.removeSubrange(...nl)
                if line.last == 0x0D { line.removeLast() }
                return line
            }
            scanned = buffer.count
            guard buffer.count <= Self.maximumLineLength else { throw lineTooLong }
            try fill()
        }
    }

    private func fill() throws {
        let deadline = next
        var chunk = [UInt8](repeating: 0, count: 4_096)
        let n: Int
        if let tls {
            n = try chunk.withUnsafeMutableBytes { try tls.read(into: $0, fd: fd, deadline: deadline) }
        } else {
            // Wait first: a reply is rarely there already, and recv, EAGAIN, poll,
            // recv cost two system calls more than poll, recv.
            try Socket.wait(fd, for: Int16(POLLIN), until: deadline, doing: "waiting for the server's reply")
            while true {
                let r = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if r >= 0 { n = r; break }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    try Socket.wait(fd, for: Int16(POLLIN), until: deadline, doing: "waiting for the server's reply")
                    continue
                }
                if errno == EINTR { continue }
                throw TransportError.closed("the connection to \(address) broke: \(String(cString: strerror(errno)))")
            }
        }
        guard n > 0 else { throw TransportError.closed("the server closed the connection") }
        buffer.append(contentsOf: chunk[..<n])
    }
}

/// The server answered STARTTLS with something other than 220.
public struct STARTTLSRefused: Error, CustomStringConvertible {
    public let reply: SMTPReply
    public var description: String { "the server refused STARTTLS: \(reply.text.prefix(200))" }
}
