import Foundation

/// A throwaway PostgreSQL cluster (Debian's server, peers.py postgres) on
/// 127.0.0.1 and a free port, in a scratch directory; trust authentication on
/// loopback, superuser `postgres`. Started once per test process, stopped and
/// removed when it exits. Each test takes a database of its own.
public final class PostgresPeer: @unchecked Sendable {
    public static let shared: Result<PostgresPeer, any Error> = Result { try PostgresPeer() }

    public let dir: String
    public let port: UInt16

    init() throws {
        dir = NSTemporaryDirectory() + "/sl-postgres-\(getpid())-\(UUID().uuidString.prefix(8))"
        port = try Peers.freePort(type: SOCK_STREAM)
        registerAtExit("rm -rf '\(dir)'")
        registerAtExit("\(Peers.script) postgres stop --dir \(dir)")
        try Peers.run([Peers.script, "postgres", "start", "--dir", dir, "--port", "\(port)"])
    }

    /// The URI of `database` as sl.conf's tls_cache names it.
    public func uri(_ database: String) -> String { "postgresql://postgres@127.0.0.1:\(port)/\(database)" }

    /// A new empty database, for one test; returns its URI.
    public func newDatabase() throws -> String {
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        try psql("postgres", "CREATE DATABASE \(name)")
        return uri(String(name))
    }

    /// Runs SQL with psql (the server's own client: what the tests check with is not
    /// the code under test); returns the unaligned rows.
    @discardableResult
    public func psql(_ database: String, _ sql: String) throws -> String {
        try Peers.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(port)",
                       "-U", "postgres", "-d", database, "-c", sql])
    }

    /// Runs a script of any size on psql's standard input (an argument is limited to
    /// 128 KiB); returns the unaligned rows.
    @discardableResult
    public func psql(_ database: String, script: String) throws -> String {
        try Peers.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(port)",
                       "-U", "postgres", "-d", database, "-f", "-"], stdin: script)
    }

    /// Everything the database holds, as pg_dump writes it (bytea in hex): what
    /// whoever copies the database gets.
    public func dump(_ database: String) throws -> String {
        try Peers.run(["pg_dump", "-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-d", database])
    }

    /// The database name at the end of one of our URIs.
    public static func database(of uri: String) -> String { String(uri.split(separator: "/").last ?? "") }
}
