import Foundation

/// The MTA-STS test parts, real ones on loopback beside `Peers` (whose Postfix MX
/// hosts they point at):
///
/// - nginx on 127.0.0.1:`httpsPort` serving `https://mta-sts.D.test/.well-known/
///   mta-sts.txt` for each policy domain, with a certificate from a CA of its own
///   (or, for `untrusted.sts.test`, a self-signed one);
/// - a dnsmasq of its own serving each domain's MX, its `_mta-sts` TXT record and
///   the address of `mta-sts.D.test`, so the policy fetch is steered by the same
///   DNS as the mail.
///
/// `trustFile` holds both CAs (the MX hosts' and the policy hosts'), as
/// `tls_ca_file` would. Started once per test process, stopped when it exits.
public final class MTASTSPeers: @unchecked Sendable {
    public static let shared: Result<MTASTSPeers, any Error> = Result { try MTASTSPeers(Peers.shared.get()) }

    /// A policy domain: its MX host, the policy served (nil: none served), how it
    /// is served, and what a probe must conclude.
    public struct Domain: Sendable {
        public let name: String
        public let mx: String
        public let id: String
        public let policy: String?
        public let serving: Serving
        public let verdict: String
        public let result: String?
        /// The evidence's mode ("enforce", ...), or nil when no policy is in force.
        public let mode: String?
        /// The evidence's RFC 8460 type for a policy that could not be had.
        public let problem: String?
    }
    public enum Serving: Sendable { case plain, untrusted, wrongType, redirect, huge }

    static func policy(_ mode: String, _ mx: [String], maxAge: Int = 86_400) -> String {
        "version: STSv1\nmode: \(mode)\n" + mx.map { "mx: \($0)\n" }.joined() + "max_age: \(maxAge)\n"
    }

    public static let domains: [Domain] = [
        Domain(name: "enforce.sts.test", mx: "mx.on.test", id: "e1", policy: policy("enforce", ["mx.on.test"]),
               serving: .plain, verdict: "verified", result: nil, mode: "enforce", problem: nil),
        Domain(name: "wildcard.sts.test", mx: "mx.on.test", id: "w1", policy: policy("enforce", ["*.on.test"]),
               serving: .plain, verdict: "verified", result: nil, mode: "enforce", problem: nil),
        Domain(name: "mismatch.sts.test", mx: "mx.on.test", id: "m1", policy: policy("enforce", ["mx.elsewhere.test", "*.mx.on.test"]),
               serving: .plain, verdict: "encrypted", result: "validation-failure", mode: "enforce", problem: nil),
        Domain(name: "untrustedmx.sts.test", mx: "mx.selfsigned.test", id: "u1", policy: policy("enforce", ["mx.selfsigned.test"]),
               serving: .plain, verdict: "encrypted", result: "certificate-not-trusted", mode: "enforce", problem: nil),
        Domain(name: "plain.sts.test", mx: "mx.off.test", id: "p1", policy: policy("enforce", ["mx.off.test"]),
               serving: .plain, verdict: "none", result: "starttls-not-supported", mode: "enforce", problem: nil),
        Domain(name: "testing.sts.test", mx: "mx.off.test", id: "t1", policy: policy("testing", ["mx.off.test"]),
               serving: .plain, verdict: "none", result: "starttls-not-supported", mode: "testing", problem: nil),
        Domain(name: "none.sts.test", mx: "mx.on.test", id: "n1", policy: "version: STSv1\nmode: none\nmax_age: 86400\n",
               serving: .plain, verdict: "verified", result: nil, mode: "none", problem: nil),
        // Policies that must not be taken: each would refuse mx.on.test if it were.
        Domain(name: "untrusted.sts.test", mx: "mx.on.test", id: "x1", policy: policy("enforce", ["mx.elsewhere.test"]),
               serving: .untrusted, verdict: "verified", result: nil, mode: nil, problem: "sts-webpki-invalid"),
        Domain(name: "badtype.sts.test", mx: "mx.on.test", id: "x2", policy: policy("enforce", ["mx.elsewhere.test"]),
               serving: .wrongType, verdict: "verified", result: nil, mode: nil, problem: "sts-policy-invalid"),
        Domain(name: "redirect.sts.test", mx: "mx.on.test", id: "x3", policy: policy("enforce", ["mx.elsewhere.test"]),
               serving: .redirect, verdict: "verified", result: nil, mode: nil, problem: "sts-policy-fetch-error"),
        Domain(name: "huge.sts.test", mx: "mx.on.test", id: "x4", policy: policy("enforce", ["mx.elsewhere.test"]),
               serving: .huge, verdict: "verified", result: nil, mode: nil, problem: "sts-policy-invalid"),
        Domain(name: "broken.sts.test", mx: "mx.on.test", id: "x5", policy: "version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\n",
               serving: .plain, verdict: "verified", result: nil, mode: nil, problem: "sts-policy-invalid"),
        Domain(name: "missing.sts.test", mx: "mx.on.test", id: "x6", policy: nil,
               serving: .plain, verdict: "verified", result: nil, mode: nil, problem: "sts-policy-fetch-error"),
    ]
    public static func domain(_ name: String) -> Domain { domains.first { $0.name == name }! }

    public let peers: Peers
    public let dir: String
    public let httpsPort: UInt16
    public let dns: DNS
    public var trustFile: String { dir + "/trust.pem" }
    public var dnsServer: String { dns.server }
    let nginx: Nginx

    /// sl.conf lines for the MX peers, the policy hosts and this DNS.
    public var configuration: String {
        """
        dns_server = \(dnsServer)
        smtp_port = \(peers.smtpPort)
        mta_sts_port = \(httpsPort)
        tls_ca_file = \(trustFile)
        tls_cache = tls-cache.json
        audit_log = audit.jsonl
        hostname = client.test

        """
    }

    /// Where nginx serves `domain`'s policy from: a test may rewrite it.
    public func policyFile(_ domain: String) -> String { "\(dir)/www/\(domain)/.well-known/mta-sts.txt" }

    /// The DNS records for `domains` (MX, _mta-sts TXT, mta-sts A) and the MX hosts.
    public static func records(_ domains: [(name: String, mx: String, id: String?)]) -> [String] {
        var r: [String] = []
        for s in Peers.servers { r += ["--a", "\(s.mxHost),\(s.address)"] }
        for d in domains {
            r += ["--mx", "\(d.name),\(d.mx),10", "--a", "mta-sts.\(d.name),127.0.0.1"]
            if let id = d.id { r += ["--txt", "_mta-sts.\(d.name),v=STSv1; id=\(id)"] }
        }
        return r
    }

    init(_ peers: Peers) throws {
        self.peers = peers
        dir = peers.dir + "/mta-sts"
        let fm = FileManager.default
        let names = (Self.domains.map(\.name) + ["change.sts.test"]).map { "mta-sts." + $0 }
        try Peers.run([Peers.script, "certs", dir + "/certs", "--names", names.joined(separator: ",")])
        let trust = try String(contentsOfFile: peers.caFile, encoding: .utf8) + String(contentsOfFile: dir + "/certs/ca.pem", encoding: .utf8)
        try trust.write(toFile: dir + "/trust.pem", atomically: true, encoding: .utf8)

        httpsPort = try Peers.freePort(type: SOCK_STREAM)
        var servers = ""
        for d in Self.domains + [Domain(name: "change.sts.test", mx: "mx.on.test", id: "", policy: nil, serving: .plain,
                                        verdict: "", result: nil, mode: nil, problem: nil)] {
            let root = "\(dir)/www/\(d.name)"
            try fm.createDirectory(atPath: root + "/.well-known", withIntermediateDirectories: true)
            if var policy = d.policy {
                if d.serving == .huge { policy += String(repeating: "x_padding: " + String(repeating: "a", count: 100) + "\n", count: 1_000) }
                try policy.write(toFile: root + "/.well-known/mta-sts.txt", atomically: true, encoding: .utf8)
            }
            let cert = d.serving == .untrusted ? "selfsigned" : "good"
            var location = "location = /.well-known/mta-sts.txt { }"
            if d.serving == .wrongType { location = "location = /.well-known/mta-sts.txt { default_type text/html; }" }
            if d.serving == .redirect { location = "location = /.well-known/mta-sts.txt { return 301 https://mta-sts.enforce.sts.test:\(httpsPort)/.well-known/mta-sts.txt; }" }
            servers += """
                server {
                    listen 127.0.0.1:\(httpsPort) ssl;
                    server_name mta-sts.\(d.name);
                    ssl_certificate \(dir)/certs/\(cert).pem;
                    ssl_certificate_key \(dir)/certs/\(cert).key;
                    root \(root);
                    \(location)
                }

            """
        }
        nginx = try Nginx(dir: dir, http: "    default_type text/plain;\n" + servers)
        try nginx.waitForPort("127.0.0.1", httpsPort)

        dns = try DNS(dir: dir + "/dns", records: Self.records(Self.domains.map { ($0.name, $0.mx, $0.id) }))
    }

    /// A dnsmasq of its own (peers.py), restartable with other records: how a test
    /// changes a TXT record's id.
    public final class DNS: @unchecked Sendable {
        public let dir: String
        public let port: UInt16
        public var server: String { "127.0.0.1:\(port)" }

        public init(dir: String, records: [String]) throws {
            self.dir = dir
            port = try Peers.freePort(type: SOCK_DGRAM)
            registerAtExit("\(Peers.script) dnsmasq stop --dir \(dir)")
            try start(records)
        }

        public func restart(_ records: [String]) throws {
            try Peers.run([Peers.script, "dnsmasq", "stop", "--dir", dir])
            try start(records)
        }

        func start(_ records: [String]) throws {
            try Peers.run([Peers.script, "dnsmasq", "start", "--dir", dir, "--port", "\(port)", "--zone", "test"] + records)
        }

        public func stop() { _ = try? Peers.run([Peers.script, "dnsmasq", "stop", "--dir", dir]) }
    }
}
