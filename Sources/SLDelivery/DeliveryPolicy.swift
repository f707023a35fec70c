import Foundation
import SLMessage

/// sl-deliver's failure policy in one place, as Postfix keeps smtp_trouble.c: what
/// each kind of trouble does to a recipient, the RFC 3463 status it is reported
/// with, and how long a recipient may wait.
///
/// | trouble                                   | outcome  | status              | then                          |
/// |-------------------------------------------|----------|---------------------|-------------------------------|
/// | server accepts                            | delivered| 2.x.x (its reply)   | done                          |
/// | server refuses for good (5xx)             | failed   | its code, else 5.0.0| report to the sender now      |
/// | SIZE, 8BITMIME, SMTPUTF8 missing          | failed   | 5.3.4, 5.6.3, 5.6.7 | report now                    |
/// | domain does not exist / null MX           | failed   | 5.1.2 / 5.1.10      | report now                    |
/// | server refuses for now (4xx), no answer,  | deferred | its code, 4.4.1,    | queued; next try after        |
/// |   broken connection, DNS failure          |          | 4.4.2, 4.4.3        | `backoff(after:)`             |
/// | TLS-only and no verified TLS              | reroute  | 4.7.5               | reroute_command, else queued  |
/// | deferred past `lifetime`                  | failed   | 4.4.7               | report                        |
/// | TLS-only past `lifetime`, no new decision | failed   | 5.7.10              | report                        |
///
/// Every report goes to the envelope sender (never to the null sender). A message
/// routed to a protecting method that is not protected never leaves
/// (`protectionProblem`).
public enum DeliveryPolicy {
    /// Days a message may stay queued before its recipients are bounced (queue_lifetime).
    public static let defaultLifetime: Double = 5 * 86_400

    /// Seconds before attempt `n + 1`: 5 minutes, doubling, at most 4 hours.
    public static func backoff(after attempts: Int) -> Double {
        min(4 * 3600, 300 * pow(2, Double(max(0, attempts - 1))))
    }

    /// Why a message must not leave as it is: routed to a protecting method but
    /// not protected (a stage of the pipeline is missing). Never sent in plaintext.
    public static func protectionProblem(_ message: Message, _ envelope: Envelope) throws -> String? {
        switch envelope.method {
        case .pgp, .smime:
            return try EncryptionDetector.existingEncryption(of: message) == nil
                ? "routed to \(envelope.method.rawValue) but not encrypted (sl-encrypt-\(envelope.method.rawValue) must run before sl-deliver)"
                : nil
        case .escrow:
            // Only sl-escrow-pack's notices leave; the message itself stays in the store.
            return envelope.isEscrowNotice
                ? nil
                : "routed to escrow but not sealed (sl-escrow-pack must run before sl-deliver)"
        case .tls, .insecure, .internal, .bounce:
            return nil
        }
    }
}

/// A message that would leave unprotected although its routing requires
/// protection. Exit 75: the caller keeps it until the pipeline is fixed.
public struct UnprotectedMessage: SysexitReporting, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
    public var sysexit: Sysexit { .tempFail }
}
