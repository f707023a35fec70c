import Foundation

/// A host to hand mail for a domain to, in the order a sending MTA tries them.
public struct MailHost: Sendable, Equatable {
    public var name: String
    public var preference: Int?
    public var port: UInt16

    public init(name: String, preference: Int?, port: UInt16) {
        self.name = name; self.preference = preference; self.port = port
    }

    /// The transport table's next hop for `domain` if it has one, else its MX hosts
    /// in preference order (at most `limit`), else the domain itself (implicit MX).
    /// Throws `NullMXError.nullMX` for a domain that accepts no mail, and DNS errors.
    public static func hosts(for domain: String, transport: TransportTable, port: UInt16,
                             resolver: DNSResolver, limit: Int) throws -> [MailHost] {
        let hop = transport.route(for: domain)
        let port = hop?.port ?? port
        if let hop, !hop.lookupMX { return [MailHost(name: hop.host, preference: nil, port: port)] }
        let mxDomain = hop?.host ?? domain
        switch try resolver.mx(mxDomain) {
        case .nullMX: throw NullMXError.nullMX
        case .implicit: return [MailHost(name: mxDomain, preference: nil, port: port)]
        case .hosts(let hosts): return hosts.prefix(limit).map { MailHost(name: $0.name.lowercased(), preference: $0.preference, port: port) }
        }
    }

    /// The addresses to connect to: the name itself when it is an address literal.
    public func addresses(resolver: DNSResolver) throws -> [String] {
        NextHop.isAddress(name) ? [name] : try resolver.addresses(name)
    }
}

/// RFC 7505: the domain publishes "MX 0 ." and accepts no mail.
public enum NullMXError: Error, CustomStringConvertible {
    case nullMX
    public var description: String { "the domain accepts no mail (null MX, RFC 7505)" }
}
