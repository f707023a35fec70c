import Foundation

/// A real nginx in the foreground, its prefix, logs and temporary files in `dir`,
/// for as long as the value lives (and killed at exit in any case). The tests give
/// only what goes inside the `http` block: their servers, or an include.
public final class Nginx: @unchecked Sendable {
    public let dir: String
    let process = Process()

    public var errorLog: String { (try? String(contentsOfFile: dir + "/error.log", encoding: .utf8)) ?? "" }
    public var isRunning: Bool { process.isRunning }

    /// Writes DIR/nginx.conf around `http`, has `nginx -t` check it, and starts
    /// nginx. Whether it answers yet is for the caller to find out (`waitForPort`,
    /// or a first request).
    public init(dir: String, http: String, connections: Int = 64) throws {
        self.dir = dir
        try FileManager.default.createDirectory(atPath: dir + "/tmp", withIntermediateDirectories: true)
        try """
        worker_processes 1;
        pid \(dir)/nginx.pid;
        error_log \(dir)/error.log;
        events { worker_connections \(connections); }
        http {
            access_log \(dir)/access.log;
            client_body_temp_path \(dir)/tmp/body;
            proxy_temp_path \(dir)/tmp/proxy;
            fastcgi_temp_path \(dir)/tmp/fastcgi;
            uwsgi_temp_path \(dir)/tmp/uwsgi;
            scgi_temp_path \(dir)/tmp/scgi;
        \(http)
        }

        """.write(toFile: dir + "/nginx.conf", atomically: true, encoding: .utf8)
        let prefix = ["-p", dir + "/", "-c", dir + "/nginx.conf", "-e", dir + "/error.log"]
        try Peers.run(["/usr/sbin/nginx", "-t"] + prefix)
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
        process.arguments = prefix + ["-g", "daemon off;"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        registerAtExit("kill \(process.processIdentifier) 2>/dev/null")
    }

    /// Waits (5 s at most) until `address`:`port` takes a TCP connection.
    public func waitForPort(_ address: String, _ port: UInt16) throws {
        for _ in 0..<100 where process.isRunning {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            sa.sin_addr.s_addr = inet_addr(address)
            let up = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 } }
            close(fd)
            if up { return }
            usleep(50_000)
        }
        throw PeerError("nginx did not start: \(errorLog)")
    }

    public func stop() {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
    }

    deinit { stop() }
}
