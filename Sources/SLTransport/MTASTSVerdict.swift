import Foundation
import SLPolicy

/// What an MTA-STS policy makes of the MX hosts a probe found (RFC 8461 4 and 5).
public struct STSJudgement: Sendable, Equatable {
    /// An MX host in use that the policy refuses: an RFC 8460 type, and why.
    public struct Failure: Sendable, Equatable {
        public var host: String
        public var result: TLSResultType
        public var reason: String
    }
    public var failures: [Failure]

    /// Every host in use must match an mx pattern (4.1) and have given verified
    /// TLS 1.2 or later (4.2; the host's verdict says so). Unreachable hosts are
    /// not in use.
    public init(policy: STSPolicy, hosts: [HostProbe]) {
        failures = []
        for h in hosts where h.verdict != .unreachable {
            if !policy.matches(h.host) {
                failures.append(Failure(host: h.host, result: .validationFailure,
                                        reason: "\(h.host) matches none of the policy's mx patterns (\(policy.mx.joined(separator: ", ")))"))
            } else if !h.verdict.satisfies(.verified) {
                failures.append(Failure(host: h.host, result: h.result ?? .validationFailure, reason: h.reason ?? "no verified TLS"))
            }
        }
    }
}

extension TLSProber {
    /// The probe's result with the domain's MTA-STS policy applied. `enforce`: the
    /// domain is verified only when every host in use passes the policy; otherwise
    /// it is at best `encrypted`, with the first failure as its result type.
    /// `testing`: the failures are evidence only. `none`, or no policy: unchanged.
    /// A domain routed by the transport table goes to hosts the administrator chose,
    /// not its MX hosts: no policy applies (as Postfix's policy lookup by next hop).
    func applyingMTASTS(_ probe: DomainProbe, resolver: DNSResolver) -> DomainProbe {
        guard options.transport.route(for: probe.domain) == nil else { return probe }
        let lookup = policies.lookup(probe.domain, resolver: resolver)
        var r = probe
        guard lookup.policy != nil || lookup.problem != nil else { return probe }
        r.mtaSTS = STSEvidence(lookup)
        r.elapsed = Date().timeIntervalSince1970 - r.checked
        guard let policy = lookup.policy, policy.mode != .none else { return r }
        let judgement = STSJudgement(policy: policy, hosts: r.hosts)
        if !judgement.failures.isEmpty { r.mtaSTS?.failures = judgement.failures.map { "\($0.host): \($0.reason)" } }
        guard policy.mode == .enforce, r.verdict != .unreachable, let first = judgement.failures.first else { return r }
        if r.verdict.satisfies(.verified) { r.verdict = .encrypted }
        r.result = first.result
        r.reason = "MTA-STS policy (enforce) refuses \(first.host): \(first.reason)"
        return r
    }
}
