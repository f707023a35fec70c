import Foundation
import SLPolicy
import SLTransport

/// A domain's MTA-STS policy at delivery (RFC 8461 5): with `enforce`, every
/// message to the domain — not only TLS-only copies — goes only to MX hosts that
/// match the policy, only over verified TLS 1.2+, and otherwise waits (a
/// temporary failure; never plaintext, never another host). With `testing`, mail
/// goes as without a policy and what enforce would refuse is told (a warning).
struct MTASTSGate {
    let domain: String
    let policy: STSPolicy
    let id: String?
    var enforced: Bool { policy.mode == .enforce }

    /// The gate for `domain`, or nil when no policy applies: a relay carries the
    /// mail (the relay applies policies), the transport table routes the domain
    /// (the administrator chose the hosts), or the domain has no policy in force.
    static func lookup(_ domain: String, options: DeliveryOptions, policies: MTASTSPolicies, resolver: DNSResolver) -> MTASTSGate? {
        guard options.relay == nil, options.transport.route(for: domain) == nil else { return nil }
        let found = policies.lookup(domain, resolver: resolver)
        guard let policy = found.policy, policy.mode != .none else { return nil }
        return MTASTSGate(domain: domain, policy: policy, id: found.id)
    }

    /// Why the policy forbids `host`, or nil when it matches a pattern (4.1).
    func refusal(of host: MailHost) -> String? {
        policy.matches(host.name) ? nil
            : "\(host.name) matches none of the MTA-STS policy's mx patterns (\(policy.mx.joined(separator: ", ")))"
    }

    /// What the deferred recipients are told.
    func deferral(_ problem: String) -> String {
        "MTA-STS policy of \(domain) (enforce\(id.map { ", id \($0)" } ?? "")): no MX host in the policy gave verified TLS; last: \(problem)"
    }

    /// The `testing` note: what enforce would have refused.
    func note(_ problem: String) -> String {
        "MTA-STS policy of \(domain) is in testing mode; enforce would refuse: \(problem)"
    }
}
