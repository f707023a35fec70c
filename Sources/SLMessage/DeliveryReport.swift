#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// RFC 3464 delivery status notifications (bounces) to the envelope sender: a
/// multipart/report with a human-readable part, the machine-readable
/// message/delivery-status, and the original header section (never the body: a
/// bounce must not carry the protected content back over an unprotected path).
public enum DeliveryReport {
    public struct Failure: Sendable {
        public var recipient: String
        public var status: EnhancedStatus
        public var diagnostic: String
        public init(recipient: String, status: EnhancedStatus, diagnostic: String) {
            self.recipient = recipient; self.status = status; self.diagnostic = diagnostic
        }
    }

    /// Why sl-classify bounces: no secure method and no permission to send without.
    public static let policyExplanation = """
        Your message could not be sent securely to the recipients below, and the
        policy for your account does not allow sending it without protection.
        Nothing was sent to them.
        """
    /// Why sl-deliver warns: delivery is late and is still being tried.
    public static let delayExplanation = """
        Your message could not be delivered to the recipients below yet.
        It is still being retried; you need not send it again. If it cannot be
        delivered before the time given, you will get another report.
        """
    /// Why sl-deliver bounces: the receiving side refused, or time ran out.
    public static let deliveryExplanation = """
        Your message could not be delivered to the recipients below.
        """

    /// `delayed`: a delay warning (Action: delayed, retried until `retryUntil`)
    /// instead of a failure report.
    public static func make(for original: Message, sender: String, hostname: String, date: Date,
                            failures: [Failure], explanation: String = policyExplanation,
                            delayed retryUntil: Date? = nil) throws -> Message {
        let crlf = "\r\n"
        let boundary = "=_sl_report_" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        let dateText = rfc5322Date(date)
        func clean(_ s: String) -> String {   // attacker text must not open a new line
            String(s.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
        }
        var human = "This is the mail system at host \(clean(hostname)).\r\n\r\n"
        human += explanation.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\r\n") + "\r\n\r\n"
        for f in failures { human += "<\(clean(f.recipient))>: \(clean(f.diagnostic))\r\n" }

        var status = "Reporting-MTA: dns; \(clean(hostname))\r\n"
        for f in failures {
            status += "\r\nFinal-Recipient: rfc822; \(clean(f.recipient))\r\nAction: \(retryUntil == nil ? "failed" : "delayed")\r\nStatus: \(f.status)\r\n"
            if let retryUntil { status += "Will-Retry-Until: \(rfc5322Date(retryUntil))\r\n" }
            status += "Diagnostic-Code: x-sl; \(clean(f.diagnostic))\r\n"
        }
        var originalHeader = original.header
        originalHeader.removeEnvelopeFields()

        var text = ""
        text += "From: Mail Delivery System <MAILER-DAEMON@\(clean(hostname))>\r\n"
        text += "To: \(clean(sender))\r\n"
        text += retryUntil == nil ? "Subject: Undelivered Mail Returned to Sender\r\n" : "Subject: Delayed Mail (still being retried)\r\n"
        text += "Date: \(dateText)\r\n"
        text += "Message-ID: <\(UUID().uuidString.lowercased())@\(clean(hostname))>\r\n"
        text += "Auto-Submitted: auto-replied\r\n"
        text += "MIME-Version: 1.0\r\n"
        text += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"\(boundary)\"\r\n"
        text += crlf
        text += "This is a MIME-encapsulated delivery report.\r\n\r\n"
        text += "--\(boundary)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\(human)\r\n"
        text += "--\(boundary)\r\nContent-Type: message/delivery-status\r\n\r\n\(status)\r\n"
        text += "--\(boundary)\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        var bytes = Array(text.utf8)
        for f in originalHeader.fields { bytes += CRLF.canonical(f.raw) }
        bytes += Array("\r\n--\(boundary)--\r\n".utf8)
        var m = try Message(bytes: bytes)
        m.index = original.index
        return m
    }

    /// Why a stage of the pipeline reports a recipient it had to leave out: the
    /// method chosen for them could not be carried out (a revoked key, no account).
    public static let stageExplanation = """
        Your message could not be sent securely to the recipients below: the
        method chosen for them could not be carried out. Nothing was sent to them;
        the other recipients were not affected.
        """

    /// The report as a message of the pipeline: from the null sender to `sender`,
    /// routed for ordinary delivery (opportunistic TLS), with its mbox From line.
    public static func routed(for original: Message, sender: String, account: String?, hostname: String, date: Date,
                              failures: [Failure], explanation: String = policyExplanation,
                              delayed retryUntil: Date? = nil) throws -> Message {
        var report = try make(for: original, sender: sender, hostname: hostname, date: date, failures: failures,
                              explanation: explanation, delayed: retryUntil)
        let routing = Envelope(sender: "", recipients: [Envelope.Recipient(address: sender)], method: .insecure,
                               tls: .opportunistic, fallback: .insecure, account: account)
        try routing.write(into: &report.header)
        report.fromLine = MboxWriter.fromLine(sender: nil, date: date)
        return report
    }

    /// RFC 5322 3.3 date-time, UTC.
    /// Made by hand with gmtime_r: a DateFormatter costs more to create than the
    /// rest of an escrow notice, and bulk runs make one per message.
    public static func rfc5322Date(_ d: Date) -> String {
        var t = time_t(d.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(tm.tm_wday)]), \(two(tm.tm_mday)) \(months[Int(tm.tm_mon)]) \(1900 + tm.tm_year) "
            + "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) +0000"
    }
}

/// An error that concerns one recipient of a copy and no one else: a revoked or
/// missing key, a certificate that fails its checks, a login recipient without an
/// account, an escrow answer that is gone. In a pipeline the stage leaves that
/// recipient out, sends the sender a delivery report for them, and goes on with
/// the others (sl(7), FAILURES); used alone, the stage fails as before.
public protocol RecipientRefusal: Error, CustomStringConvertible {
    var refusedRecipient: String { get }
    /// Why, in words, for the report and the log.
    var refusalReason: String { get }
    /// RFC 3463 status for the report: permanent (5.x.x).
    var refusalStatus: EnhancedStatus { get }
}

extension RecipientRefusal {
    public var refusalStatus: EnhancedStatus { .securityPolicy }
}
