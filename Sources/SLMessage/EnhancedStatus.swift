/// An RFC 3463 enhanced status code, `class.subject.detail`: what a delivery
/// report and the audit log say about one recipient. The codes sl gives itself are
/// named here, so the meaning is read where they are used, not looked up.
public struct EnhancedStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    /// A code as written, checked: class 2, 4 or 5, then two numbers of one to
    /// three digits (RFC 3463 section 2).
    public init?(rawValue: String) {
        let parts = rawValue.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, ["2", "4", "5"].contains(parts[0]),
              parts.dropFirst().allSatisfy({ (1...3).contains($0.count) && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) })
        else { return nil }
        self.rawValue = rawValue
    }

    private init(_ code: String) { rawValue = code }

    public var description: String { rawValue }
    /// 4.x.x: the attempt may succeed later.
    public var isTemporary: Bool { rawValue.hasPrefix("4.") }

    /// The class alone (X.0.0), for a reply that carries no enhanced code.
    public static func ofReplyClass(_ replyCode: Int) -> EnhancedStatus {
        EnhancedStatus("\(min(max(replyCode / 100, 2), 5)).0.0")
    }

    public static let success = EnhancedStatus("2.0.0")
    /// 4.0.0: not delivered yet, still being tried (a delay warning).
    public static let deferredTemporary = EnhancedStatus("4.0.0")
    /// 5.0.0, other undefined status: deleted from the queue by its administrator.
    public static let administrativeDeletion = EnhancedStatus("5.0.0")
    /// 5.1.2: the domain does not exist.
    public static let badDestinationSystem = EnhancedStatus("5.1.2")
    /// 5.1.10: the domain has a null MX and accepts no mail (RFC 7505).
    public static let nullMX = EnhancedStatus("5.1.10")
    /// 5.3.4: the message is larger than the server takes.
    public static let messageTooBig = EnhancedStatus("5.3.4")
    /// 4.4.1: no answer from the host.
    public static let noAnswerFromHost = EnhancedStatus("4.4.1")
    /// 4.4.2: the connection broke.
    public static let badConnection = EnhancedStatus("4.4.2")
    /// 4.4.3: the DNS lookup failed (routing server failure).
    public static let routingServerFailure = EnhancedStatus("4.4.3")
    /// 4.4.7: still undeliverable when the queue lifetime ran out.
    public static let deliveryTimeExpired = EnhancedStatus("4.4.7")
    /// 5.6.3: 8-bit content to a server without 8BITMIME.
    public static let conversionRequired = EnhancedStatus("5.6.3")
    /// 5.6.7: SMTPUTF8 needed and not offered (RFC 6531).
    public static let internationalizationNotSupported = EnhancedStatus("5.6.7")
    /// 5.7.0: refused by policy (no secure method, and no permission to send without).
    public static let securityPolicy = EnhancedStatus("5.7.0")
    /// 4.7.5: no verified TLS this time (cryptographic failure, temporary).
    public static let cryptographicFailureNow = EnhancedStatus("4.7.5")
    /// 5.7.5: no usable key or certificate (cryptographic failure).
    public static let cryptographicFailure = EnhancedStatus("5.7.5")
    /// 5.7.10: TLS-only delivery impossible (encryption needed, RFC 5248).
    public static let encryptionNeeded = EnhancedStatus("5.7.10")
}
