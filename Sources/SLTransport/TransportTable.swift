import Foundation
import SLPolicy

/// Where to connect for a domain instead of its MX hosts: a transport(5)-style
/// `smtp:` next hop.
public struct NextHop: Sendable, Equatable {
    /// A host name or an IP address literal.
    public var host: String
    /// nil: the default SMTP port (25, or `--port`).
    public var port: UInt16?
    /// `smtp:host` looks up MX records for host; `smtp:[host]` connects to it directly.
    public var lookupMX: Bool

    public init(host: String, port: UInt16? = nil, lookupMX: Bool) {
        self.host = host; self.port = port; self.lookupMX = lookupMX
    }

    /// Parses `smtp:[host]:port`, `smtp:host:port`, `smtp:[host]`, `smtp:host`, and
    /// `[::1]`-style IPv6 literals in brackets.
    public init(parsing text: String) throws {
        guard text.hasPrefix("smtp:") else {
            throw TransportTableError("next hop \"\(text)\" is not smtp:HOST[:PORT] or smtp:[HOST][:PORT]")
        }
        var rest = Substring(text.dropFirst(5))
        var host: Substring
        var bracketed = false
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw TransportTableError("next hop \"\(text)\": missing ]") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            rest = rest[rest.index(after: close)...]
            bracketed = true
        } else if let colon = rest.firstIndex(of: ":") {
            host = rest[..<colon]
            rest = rest[colon...]
        } else {
            host = rest
            rest = ""
        }
        var port: UInt16? = nil
        if !rest.isEmpty {
            guard rest.hasPrefix(":"), let p = UInt16(rest.dropFirst()), p > 0 else {
                throw TransportTableError("next hop \"\(text)\": bad port")
            }
            port = p
        }
        let h = String(host)
        guard !h.isEmpty, DNSResolver.isHostName(h) || (bracketed && Self.isAddress(h)) else {
            throw TransportTableError("next hop \"\(text)\": \"\(h)\" is not a host name\(bracketed ? " or address" : "")")
        }
        self.init(host: h.lowercased(), port: port, lookupMX: !bracketed)
    }

    static func isAddress(_ s: String) -> Bool {
        var a4 = in_addr(), a6 = in6_addr()
        return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1
    }
}

public struct TransportTableError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

/// A routing table in the style of Postfix transport(5): `domain next-hop` lines.
/// `example.org` matches that domain, `.example.org` its subdomains, `*` anything.
public struct TransportTable: Sendable {
    var entries: [String: NextHop] = [:]

    public init() {}

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(path, 0, "cannot read the transport table")
        }
        do {
            try self.init(text: String(decoding: data, as: UTF8.self))
        } catch let e as TableLineError {
            throw ConfigurationError(path, e.line, e.message)
        }
    }

    /// A line of the table that does not parse.
    public struct TableLineError: Error, CustomStringConvertible {
        public let line: Int
        public let message: String
        public var description: String { "line \(line): \(message)" }
    }

    public init(text: String) throws {
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if words.isEmpty { continue }
            guard words.count == 2 else {
                throw TableLineError(line: i + 1, message: "expected \"DOMAIN NEXT-HOP\"")
            }
            let pattern = words[0].lowercased()
            let bare = pattern.hasPrefix(".") ? String(pattern.dropFirst()) : pattern
            guard pattern == "*" || DNSResolver.isHostName(bare) else {
                throw TableLineError(line: i + 1, message: "\"\(words[0].prefix(80))\" is not a domain, .domain or *")
            }
            do {
                entries[pattern] = try NextHop(parsing: String(words[1]))
            } catch let e as TransportTableError {
                throw TableLineError(line: i + 1, message: e.description)
            }
        }
    }

    /// The next hop for `domain` (lowercased): exact, then the nearest `.parent`, then `*`.
    public func route(for domain: String) -> NextHop? {
        if let hop = entries[domain] { return hop }
        var rest = Substring(domain)
        while let dot = rest.firstIndex(of: ".") {
            rest = rest[dot...]
            if let hop = entries[String(rest)] { return hop }
            rest = rest.dropFirst()
        }
        return entries["*"]
    }
}
