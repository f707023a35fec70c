import ArgumentParser

/// The options that say where mail goes and whom to trust, shared by the tools
/// that talk SMTP (sl-tls-probe, sl-deliver); each defaults to sl.conf.
public struct TransportOptions: ParsableArguments {
    public init() {}

    @Option(help: ArgumentHelp("DNS server to ask instead of resolv.conf's (default: dns_server in sl.conf).", valueName: "ipv4[:port]"))
    public var dns: String?

    @Option(name: .customLong("dnssec-resolver"), help: ArgumentHelp("Validating resolver whose DNSSEC answers are trusted; asked for every lookup, it makes DANE possible (default: dnssec_resolver in sl.conf; without it, no DANE).", valueName: "ipv4[:port]"))
    public var dnssecResolver: String?

    @Option(help: ArgumentHelp("SMTP port of the MX hosts (default: smtp_port in sl.conf, else 25).", valueName: "port"))
    public var port: UInt16?

    @Option(name: .customLong("ca-file"), help: ArgumentHelp("Trust anchors for server certificates, PEM (default: tls_ca_file, else the system CA store).", valueName: "file"))
    public var caFile: String?

    @Option(help: ArgumentHelp("Routing table in transport(5) style (default: transport_map in sl.conf).", valueName: "file"))
    public var transport: String?

    @Option(name: .customLong("mta-sts-port"), help: ArgumentHelp("HTTPS port of the MTA-STS policy hosts, mta-sts.DOMAIN (default: mta_sts_port in sl.conf, else 443; for tests and relays).", valueName: "port"))
    public var mtaSTSPort: UInt16?

    public func validate() throws {
        if port == 0 { throw ValidationError("--port must be 1-65535") }
        if mtaSTSPort == 0 { throw ValidationError("--mta-sts-port must be 1-65535") }
    }

}
