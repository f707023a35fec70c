import Foundation

/// The DANE test world (RFC 7672), all real and on loopback, started by the tests
/// through peers.py:
///
/// - the zone `dane.test`, signed at start-up with a fresh key (ldns-signzone) and
///   served by NSD;
/// - Unbound, validating, with that zone's DS as its only trust anchor: what it
///   answers in `dane.test` carries the AD bit, and the TLSA RRset whose RRSIG
///   peers.py corrupts (`bogus`) comes back SERVFAIL;
/// - one Postfix per certificate kind on 127.0.0.11-14, with its own throwaway
///   CA (`caFile`), so that WebPKI can verify exactly the hosts meant to verify.
///
/// Each `Host` is an MX domain whose TLSA records say what the probe must find.
/// Started once per test process, stopped when it exits.
public final class DNSSECPeers: @unchecked Sendable {
    public static let shared: Result<DNSSECPeers, any Error> = Result { try DNSSECPeers() }

    public static let zone = "dane.test"

    /// A DANE test domain: `NAME.dane.test` with MX `mx.NAME.dane.test`.
    public struct Host: Sendable {
        public let name: String
        /// The Postfix it reaches (one of `servers`).
        public let server: String
        /// TLSA records as peers.py takes them: "USAGE,SELECTOR,MTYPE,SOURCE", with
        /// SOURCE a certificate file in `certs` or hex:DATA.
        public let tlsa: [String]
        public let bogus: Bool
        /// What sl-tls-probe must say with the trusted resolver.
        public let verdict: String
        public let result: String?
        public var domain: String { "\(name).\(DNSSECPeers.zone)" }
        public var mxHost: String { "mx.\(domain)" }
    }

    /// Postfix instances by certificate kind, and their addresses.
    public static let servers: [(tls: String, address: String)] = [
        ("dane-ee", "127.0.0.11"), ("dane-ta", "127.0.0.12"), ("on", "127.0.0.13"),
    ]

    public static let hosts: [Host] = [
        // self-signed, expired, another host's name: DANE-EE(3) cares for the key only
        Host(name: "ee", server: "dane-ee", tlsa: ["3,1,1,daneee.pem"], bogus: false, verdict: "dane", result: nil),
        Host(name: "ee512", server: "dane-ee", tlsa: ["3,1,2,daneee.pem"], bogus: false, verdict: "dane", result: nil),
        Host(name: "eefull", server: "dane-ee", tlsa: ["3,0,0,daneee.pem"], bogus: false, verdict: "dane", result: nil),
        // a leaf from a private CA named by DANE-TA(2) (full certificate and key)
        Host(name: "ta", server: "dane-ta", tlsa: ["2,0,1,daneta.pem"], bogus: false, verdict: "dane", result: nil),
        Host(name: "taspki", server: "dane-ta", tlsa: ["2,1,1,daneta.pem"], bogus: false, verdict: "dane", result: nil),
        // a WebPKI-valid certificate that the TLSA records do not name: refused
        Host(name: "mismatch", server: "on",
             tlsa: ["3,1,1,hex:" + String(repeating: "5a", count: 32)], bogus: false, verdict: "none", result: "tlsa-invalid"),
        // DANE-TA(2) for this CA, but the certificate names other hosts (RFC 7672 3.2.3)
        Host(name: "taname", server: "dane-ta", tlsa: ["2,0,1,daneta.pem"], bogus: false, verdict: "none", result: "certificate-host-mismatch"),
        // a matching record whose signature is broken: the lookup fails, refused
        Host(name: "bogus", server: "on", tlsa: ["3,1,1,good.pem"], bogus: true, verdict: "none", result: "dnssec-invalid"),
        // PKIX-EE(1) only: unusable for SMTP, so TLS without authentication
        Host(name: "pkix", server: "on", tlsa: ["1,1,1,good.pem"], bogus: false, verdict: "encrypted", result: "tlsa-invalid"),
        // a signed zone without TLSA records: the WebPKI rule
        Host(name: "plain", server: "on", tlsa: [], bogus: false, verdict: "verified", result: nil),
    ]

    public static func host(_ name: String) -> Host { hosts.first { $0.name == name }! }

    public let dir: String
    public let certs: String
    public let smtpPort: UInt16
    public let resolverPort: UInt16
    /// Ports chosen before signing, for the scripted servers of the attack tests:
    /// `mx.strip.dane.test` and `mx.wrongcert.dane.test` (127.0.0.1) have TLSA
    /// records at these ports, reached through the transport table.
    public let stripPort: UInt16
    public let wrongCertPort: UInt16
    public var caFile: String { certs + "/ca.pem" }
    public var resolver: String { "127.0.0.1:\(resolverPort)" }

    /// sl.conf lines: the trusted resolver, the DANE Postfix port and CA.
    public var configuration: String {
        """
        dnssec_resolver = \(resolver)
        smtp_port = \(smtpPort)
        tls_ca_file = \(caFile)
        tls_cache = tls-cache.json
        audit_log = audit.jsonl
        hostname = client.test

        """
    }

    public func maildir(_ server: String) -> String { "\(dir)/postfix-\(server)/Maildir" }

    /// Messages the host's Postfix delivered containing `marker` (waits up to `wait`).
    public func delivered(to host: Host, containing marker: String, wait: Double = 10) -> [String] {
        let end = Date().addingTimeInterval(wait)
        while true {
            var out: [String] = []
            for sub in ["new", "cur"] {
                let d = maildir(host.server) + "/" + sub
                for name in (try? FileManager.default.contentsOfDirectory(atPath: d)) ?? [] {
                    if let data = FileManager.default.contents(atPath: d + "/" + name),
                       String(decoding: data, as: UTF8.self).contains(marker) {
                        out.append(String(decoding: data, as: UTF8.self))
                    }
                }
            }
            if !out.isEmpty || Date() > end { return out }
            usleep(100_000)
        }
    }

    init() throws {
        dir = NSTemporaryDirectory() + "/sl-dnssec-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        registerAtExit("rm -rf '\(dir)'")
        certs = dir + "/certs"
        smtpPort = try Peers.freePort(type: SOCK_STREAM)
        resolverPort = try Peers.freePort(type: SOCK_DGRAM)
        let authPort = try Peers.freePort(type: SOCK_DGRAM)
        stripPort = try Peers.freePort(type: SOCK_STREAM)
        wrongCertPort = try Peers.freePort(type: SOCK_STREAM)
        // Every MX name but taname's is in the certificates: WebPKI would verify
        // mismatch, bogus and pkix, so only DANE can refuse them.
        let names = Self.hosts.filter { $0.name != "taname" }.map(\.mxHost)
        try Peers.run([Peers.script, "certs", certs, "--names", names.joined(separator: ",")])

        var args = [Peers.script, "dnssec", "start", "--dir", dir + "/dns", "--zone", Self.zone,
                    "--auth-port", "\(authPort)", "--resolver-port", "\(resolverPort)"]
        for h in Self.hosts {
            let address = Self.servers.first { $0.tls == h.server }!.address
            args += ["--rr", "\(h.name) MX 10 mx.\(h.name)", "--rr", "mx.\(h.name) A \(address)"]
            for t in h.tlsa { args += ["--tlsa", "_\(smtpPort)._tcp.mx.\(h.name),\(Self.withCertPath(t, certs))"] }
            if h.bogus { args += ["--bogus", "_\(smtpPort)._tcp.mx.\(h.name)"] }
        }
        // two DANE hosts, and a DANE host beside a WebPKI one
        args += ["--rr", "both MX 10 mx.ee", "--rr", "both MX 20 mx.ta",
                 "--rr", "mixed MX 10 mx.ee", "--rr", "mixed MX 20 mx.plain"]
        args += ["--rr", "mx.strip A 127.0.0.1", "--tlsa", "_\(stripPort)._tcp.mx.strip,\(Self.withCertPath("3,1,1,good.pem", certs))",
                 "--rr", "mx.wrongcert A 127.0.0.1", "--tlsa", "_\(wrongCertPort)._tcp.mx.wrongcert,\(Self.withCertPath("3,1,1,daneee.pem", certs))"]
        registerAtExit("\(Peers.script) dnssec stop --dir \(dir)/dns")
        try Peers.run(args)

        for s in Self.servers {
            let d = "\(dir)/postfix-\(s.tls)"
            registerAtExit("\(Peers.script) postfix stop --dir \(d)")
            try Peers.run([Peers.script, "postfix", "start", "--dir", d, "--address", s.address, "--port", "\(smtpPort)",
                           "--tls", s.tls, "--certs", certs, "--hostname", "mx.\(s.tls).\(Self.zone)"])
        }
    }

    /// A TLSA spec with its certificate file's path.
    static func withCertPath(_ spec: String, _ certs: String) -> String {
        var parts = spec.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        if !parts[3].hasPrefix("hex:") { parts[3] = certs + "/" + parts[3] }
        return parts.joined(separator: ",")
    }
}
