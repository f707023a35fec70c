import Foundation

/// The real peers the transport tests talk to, started on loopback by the tests
/// themselves (Tests/SLTestPeers/peers.py does the starting; see its README):
///
/// - one throwaway Postfix `smtpd` per TLS case, each on its own 127.0.0.x address
///   and all on the same port, so that MX records (which carry no port) reach them;
/// - `dnsmasq` on 127.0.0.1 serving the test zone `.test`;
/// - scripted misbehaving servers (`badserver`), the one stand-in: no real server
///   misbehaves on purpose.
///
/// Started once per test process, stopped when it exits.
public final class Peers: @unchecked Sendable {
    public static let shared: Result<Peers, any Error> = Result { try Peers() }

    /// One Postfix per TLS case: its domain, MX host, address, and what a probe must say.
    public struct Server: Sendable {
        public let domain: String
        public let mxHost: String
        public let address: String
        public let tls: String
        public let verdict: String
        public let result: String?
    }

    public static let servers: [Server] = [
        Server(domain: "on.test", mxHost: "mx.on.test", address: "127.0.0.2", tls: "on", verdict: "verified", result: nil),
        Server(domain: "off.test", mxHost: "mx.off.test", address: "127.0.0.3", tls: "off", verdict: "none", result: "starttls-not-supported"),
        Server(domain: "expired.test", mxHost: "mx.expired.test", address: "127.0.0.4", tls: "expired", verdict: "encrypted", result: "certificate-expired"),
        Server(domain: "wrongname.test", mxHost: "mx.wrongname.test", address: "127.0.0.5", tls: "wrongname", verdict: "encrypted", result: "certificate-host-mismatch"),
        Server(domain: "selfsigned.test", mxHost: "mx.selfsigned.test", address: "127.0.0.6", tls: "selfsigned", verdict: "encrypted", result: "certificate-not-trusted"),
    ]

    /// An address where nothing listens (connection refused).
    public static let deadAddress = "127.0.0.9"

    public let dir: String
    public let certs: String
    public let smtpPort: UInt16
    public let dnsPort: UInt16
    public var caFile: String { certs + "/ca.pem" }
    public var dnsServer: String { "127.0.0.1:\(dnsPort)" }
    /// sl.conf lines that point DNS, the SMTP port and server trust at the peers,
    /// with a TLS cache and an audit log beside the configuration.
    public var configuration: String {
        """
        dns_server = \(dnsServer)
        smtp_port = \(smtpPort)
        tls_ca_file = \(caFile)
        tls_cache = tls-cache.json
        audit_log = audit.jsonl
        hostname = client.test

        """
    }

    /// The main.cf directory of a server's Postfix (MAIL_CONFIG for posttls-finger).
    public func configDirectory(_ server: Server) -> String { "\(dir)/postfix-\(server.tls)/etc" }
    /// Where a server's Postfix delivers everything it accepts.
    public func maildir(_ server: Server) -> String { "\(dir)/postfix-\(server.tls)/Maildir" }
    public static func server(_ tls: String) -> Server { servers.first { $0.tls == tls }! }

    /// The messages a server has delivered whose text contains `marker`. Postfix
    /// delivers shortly after its 250, so this waits up to `wait` seconds for at
    /// least `atLeast` of them.
    public func delivered(to server: Server, containing marker: String, atLeast: Int = 1, wait: Double = 10) -> [String] {
        let end = Date().addingTimeInterval(wait)
        while true {
            let found = deliveredNow(to: server, containing: marker)
            if found.count >= atLeast || Date() > end { return found }
            usleep(100_000)
        }
    }

    func deliveredNow(to server: Server, containing marker: String) -> [String] {
        var out: [String] = []
        for sub in ["new", "cur"] {
            let d = maildir(server) + "/" + sub
            for name in (try? FileManager.default.contentsOfDirectory(atPath: d)) ?? [] {
                if let data = FileManager.default.contents(atPath: d + "/" + name) {
                    let text = String(decoding: data, as: UTF8.self)
                    if text.contains(marker) { out.append(text) }
                }
            }
        }
        return out
    }

    public static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("peers.py").path
    }

    init() throws {
        dir = NSTemporaryDirectory() + "/sl-peers-\(getpid())-\(UUID().uuidString.prefix(8))"
        // Postfix's daemons drop privileges: the path to their directories must be
        // searchable by the postfix user.
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        certs = dir + "/certs"
        smtpPort = try Self.freePort(type: SOCK_STREAM)
        dnsPort = try Self.freePort(type: SOCK_DGRAM)
        try Self.run([Self.script, "certs", certs, "--names", (Self.servers.map(\.mxHost) + [BadServer.mxHost]).joined(separator: ",")])

        var records: [String] = []
        for s in Self.servers {
            records += ["--mx", "\(s.domain),\(s.mxHost),10", "--a", "\(s.mxHost),\(s.address)"]
        }
        records += [
            // the worst host decides: verified primary, plaintext backup
            "--mx", "mixed.test,mx.on.test,10", "--mx", "mixed.test,mx.off.test,20",
            // a backup that does not answer is not in use
            "--mx", "backupdown.test,mx.on.test,10", "--mx", "backupdown.test,mx.down.test,20",
            "--a", "mx.down.test,\(Self.deadAddress)",
            // preference order, not answer order
            "--mx", "order.test,c.order.test,30", "--mx", "order.test,a.order.test,10", "--mx", "order.test,b.order.test,20",
            "--a", "a.order.test,127.0.0.2", "--a", "b.order.test,127.0.0.3", "--a", "c.order.test,127.0.0.4",
            "--aaaa", "b.order.test,::1",
            "--nullmx", "nullmx.test",
            // no MX: the domain's own address (RFC 5321 5.1)
            "--a", "implicit.test,127.0.0.2",
            "--mx", "down.test,mx.down.test,10",
            // a real MX that answers 451 to every recipient (see peers.py)
            "--mx", "later.test,mx.on.test,10",
            // the scripted server's name, for deliveries that verify its certificate
            "--a", "\(BadServer.mxHost),127.0.0.1",
            // TXT: one record of two character-strings, joined when read
            "--txt", "_mta-sts.on.test,v=STSv1; |id=20261130",
            // RFC 8460: where on.test and off.test want TLS reports (both to a mailbox
            // at on.test's Postfix); expired.test asks for none
            "--txt", "_smtp._tls.on.test,v=TLSRPTv1; rua=mailto:tlsrpt@on.test,https://reports.on.test/v1",
            "--txt", "_smtp._tls.off.test,v=TLSRPTv1;rua=mailto:tlsrpt@on.test",
        ]
        try Self.run([Self.script, "dnsmasq", "start", "--dir", dir + "/dns", "--port", "\(dnsPort)", "--zone", "test"] + records)
        registerAtExit("rm -rf '\(dir)'")
        registerAtExit("\(Self.script) dnsmasq stop --dir \(dir)/dns")

        for s in Self.servers {
            let d = "\(dir)/postfix-\(s.tls)"
            registerAtExit("\(Self.script) postfix stop --dir \(d)")
            try Self.run([Self.script, "postfix", "start", "--dir", d, "--address", s.address, "--port", "\(smtpPort)",
                          "--tls", s.tls, "--certs", certs, "--hostname", s.mxHost])
        }
    }

    /// A free port on 127.0.0.1 for `type`, as the kernel hands one out.
    public static func freePort(type: __socket_type) throws -> UInt16 {
        let fd = socket(AF_INET, Int32(type.rawValue), 0)
        guard fd >= 0 else { throw PeerError("socket: \(errno)") }
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw PeerError("bind: \(errno)") }
        return UInt16(bigEndian: sa.sin_port)
    }

    /// Runs a command to completion, its output in files (no pipe can fill up);
    /// its stderr becomes the error if it fails. Returns its stdout.
    @discardableResult
    public static func run(_ argv: [String], stdin: String? = nil) throws -> String {
        let base = NSTemporaryDirectory() + "/sl-peer-run-\(UUID().uuidString)"
        defer { for s in [".in", ".out", ".err"] { unlink(base + s) } }
        FileManager.default.createFile(atPath: base + ".in", contents: Data((stdin ?? "").utf8))
        FileManager.default.createFile(atPath: base + ".out", contents: nil)
        FileManager.default.createFile(atPath: base + ".err", contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        p.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: base + ".in"))
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".out"))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".err"))
        try p.run()
        p.waitUntilExit()
        let out = String(decoding: FileManager.default.contents(atPath: base + ".out") ?? Data(), as: UTF8.self)
        let err = String(decoding: FileManager.default.contents(atPath: base + ".err") ?? Data(), as: UTF8.self)
        guard p.terminationStatus == 0 else {
            throw PeerError("\(argv.prefix(3).joined(separator: " ")) failed (\(p.terminationStatus)): \(err.suffix(2000))")
        }
        return out
    }
}

public struct PeerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Shell commands run when the test process exits: the peers outlive every test.
nonisolated(unsafe) private var atExitCommands: [String] = []
private let atExitLock = NSLock()

func registerAtExit(_ command: String) {
    atExitLock.lock(); defer { atExitLock.unlock() }
    if atExitCommands.isEmpty {
        atexit {
            for c in atExitCommands.reversed() { _ = system(c + " >/dev/null 2>&1") }
        }
    }
    atExitCommands.append(command)
}

/// A scripted misbehaving SMTP server (peers.py badserver), for as long as the
/// value lives.
public final class BadServer: @unchecked Sendable {
    public let address = "127.0.0.1"
    /// The test DNS name of `address`, which the test certificates name too: route a
    /// domain to `smtp:[mx.bad.test]:PORT` to deliver over verified TLS.
    public static let mxHost = "mx.bad.test"
    public let port: UInt16
    let process: Process

    /// `port`: one chosen in advance (a TLSA record names it), else a free one.
    /// `log`: a file where the server appends every MAIL command it receives.
    public init(mode: String, certs: String, port: UInt16? = nil, log: String? = nil) throws {
        self.port = try port ?? Peers.freePort(type: SOCK_STREAM)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [Peers.script, "badserver", "--address", address, "--port", "\(self.port)", "--mode", mode, "--certs", certs]
            + (log.map { ["--log", $0] } ?? [])
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        // It prints "ready" once it listens.
        var seen = Data()
        let handle = out.fileHandleForReading
        while !String(decoding: seen, as: UTF8.self).contains("ready") {
            let chunk = handle.availableData
            if chunk.isEmpty { throw PeerError("badserver \(mode) exited before it was ready") }
            seen += chunk
        }
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// Postfix's smtp-sink on 127.0.0.1 with its fault options (-f hard reject, -r soft
/// reject, -q disconnect, -8 no 8BITMIME, -p no PIPELINING), for as long as the value lives.
public final class SMTPSink: @unchecked Sendable {
    public let address = "127.0.0.1"
    public let port: UInt16
    let process: Process

    public init(_ options: [String] = [], port: UInt16? = nil) throws {
        self.port = try port ?? Peers.freePort(type: SOCK_STREAM)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/smtp-sink")
        process.arguments = ["-u", "nobody"] + options + ["\(address):\(self.port)", "64"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready when it accepts a connection.
        for _ in 0..<100 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = self.port.bigEndian
            sa.sin_addr.s_addr = inet_addr(address)
            let ok = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 } }
            close(fd)
            if ok { return }
            usleep(50_000)
        }
        throw PeerError("smtp-sink did not start on port \(self.port)")
    }

    public func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}
