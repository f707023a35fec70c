import Foundation

/// A host to hand mail for a domain to, in the order a sending MTA tries them.
public struct MailHost: Sendable, Equatable {
    public var name: String
    public var preference: Int?
    public var port: UInt16
    /// The name is trustworthy for DANE (RFC 7672 2.2.1): it came from a
    /// DNSSEC-validated MX RRset (or a validated denial, for the implicit MX), or
    /// from the administrator's transport table.
    public var secure: Bool

    public init(name: String, preference: Int?, port: UInt16, secure: Bool = false) {
        self.name = name; self.preference = preference; self.port = port; self.secure = secure
    }

    /// The transport table's next hop for `domain` if it has one, else its MX hosts
    /// in preference order (at most `limit`), else the domain itself (implicit MX).
    /// Throws `NullMXError.nullMX` for a domain that accepts no mail, and DNS errors.
    public static func hosts(for domain: String, transport: TransportTable, port: UInt16,
                             resolver: DNSResolver, limit: Int) throws -> [MailHost] {
        let hop = transport.route(for: domain)
        let port = hop?.port ?? port
        if let hop, !hop.lookupMX { return [MailHost(name: hop.host, preference: nil, port: port, secure: true)] }
        let mxDomain = hop?.host ?? domain
        let (answer, secure) = try resolver.securedMX(mxDomain)
        switch answer {
        case .nullMX: throw NullMXError.nullMX
        case .implicit: return [MailHost(name: mxDomain, preference: nil, port: port, secure: secure)]
        case .hosts(let hosts): return hosts.prefix(limit).map { MailHost(name: $0.name.lowercased(), preference: $0.preference, port: port, secure: secure) }
        }
    }

    /// The addresses to connect to: the name itself when it is an address literal.
    public func addresses(resolver: DNSResolver) throws -> [String] { try resolve(resolver).addresses }

    /// The addresses, and whether they came from validated answers (an address
    /// literal has no TLSA records, so it never is).
    public func resolve(_ resolver: DNSResolver) throws -> (addresses: [String], secure: Bool) {
        NextHop.isAddress(name) ? ([name], false) : try resolver.securedAddresses(name)
    }
}

/// RFC 7505: the domain publishes "MX 0 ." and accepts no mail.
public enum NullMXError: Error, CustomStringConvertible {
    case nullMX
    public var description: String { "the domain accepts no mail (null MX, RFC 7505)" }
}
