#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage
import SLPolicy
import SLTransport

/// The submission relay of `relay`, `relay_tls` and `relay_credentials` (or
/// --relay): where sl-deliver sends everything instead of to MX hosts.
extension Relay {
    /// HOST, HOST:PORT or [ADDRESS]:PORT; port 587 (submission) by default, and
    /// implicit TLS by default on 465. `credentials` names the file of
    /// relay_credentials; `source`, the configuration, for errors.
    public init(parsing spec: String, implicitTLS: Bool?, credentials: String?, source: String) throws {
        var host = spec, portText: String? = nil
        if spec.hasPrefix("["), let close = spec.firstIndex(of: "]") {
            host = String(spec[spec.index(after: spec.startIndex)..<close])
            let rest = spec[spec.index(after: close)...]
            if rest.hasPrefix(":") { portText = String(rest.dropFirst()) } else if !rest.isEmpty { host = "" }
        } else if let colon = spec.lastIndex(of: ":") {
            host = String(spec[..<colon]); portText = String(spec[spec.index(after: colon)...])
        }
        let hop: NextHop
        do { hop = try NextHop(parsing: "smtp:[\(host)]" + (portText.map { ":" + $0 } ?? "")) } catch {
            throw RelaySpecError(description: "relay \"\(spec)\" is not HOST[:PORT]")
        }
        let port = hop.port ?? 587
        self.init(host: hop.host, port: port, implicitTLS: implicitTLS ?? (port == 465))
        if let credentials {
            (username, password) = try RelayCredentials.load(credentials, source: source)
        }
    }
}

/// A relay that is not HOST[:PORT]. Exit 64, as for any bad option value.
public struct RelaySpecError: SysexitReporting, CustomStringConvertible {
    public let description: String
    public var sysexit: Sysexit { .usage }
}

/// The relay's user name and password: two lines of a file only its owner can read.
enum RelayCredentials {
    static func load(_ path: String, source: String) throws -> (String, String) {
        var st = stat()
        guard stat(path, &st) == 0 else { throw ConfigurationError(source, 0, "relay_credentials \(path): \(String(cString: strerror(errno)))") }
        guard st.st_mode & 0o077 == 0 else {
            throw ConfigurationError(source, 0, "relay_credentials \(path) is readable by others; chmod 600 it")
        }
        guard st.st_uid == geteuid() else { throw ConfigurationError(source, 0, "relay_credentials \(path) belongs to another user") }
        guard let data = FileManager.default.contents(atPath: path) else { throw ConfigurationError(source, 0, "cannot read relay_credentials \(path)") }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
        guard lines.count >= 2, !lines[0].isEmpty, !lines[1].isEmpty else {
            throw ConfigurationError(source, 0, "relay_credentials \(path): expected the user name on line 1 and the password on line 2")
        }
        return (lines[0], lines[1])
    }
}
