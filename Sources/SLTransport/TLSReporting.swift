// SMTP TLS reporting (RFC 8460): sl-deliver notes how each session's TLS went, and
// `sl-tls-probe --report` turns a day of those notes into the aggregate reports a
// domain asks for in its `_smtp._tls` TXT record, as mail for sl-deliver.
import Foundation
import SLMessage
import SLPolicy

/// One SMTP session to a recipient domain's mail host and how its TLS went: the
/// unit RFC 8460 counts.
public struct TLSSessionRecord: Codable, Sendable, Equatable {
    /// Seconds since the epoch when the session was opened.
    public var time: Double
    /// The policy domain: the recipient domain the session was for.
    public var domain: String
    /// The mail host's name (RFC 8460 receiving-mx-hostname).
    public var mx: String
    /// The address connected to (receiving-ip).
    public var address: String?
    /// This end's address (sending-mta-ip).
    public var sendingAddress: String?
    /// `success`, or an RFC 8460 result type.
    public var result: String
    /// RFC 8460 policy-type: `tlsa`, `sts` or `no-policy-found`.
    public var policyType: String
    /// The policy as RFC 8460 reports it (TLSA records, or the MTA-STS policy's lines).
    public var policyStrings: [String]?
    /// An MTA-STS policy's mx patterns (the report's mx-host).
    public var mxPatterns: [String]?

    public static let success = "success"
    public static let noPolicy = "no-policy-found"

    public init(time: Double, domain: String, mx: String, address: String?, sendingAddress: String? = nil, result: String,
                policyType: String = TLSSessionRecord.noPolicy, policyStrings: [String]? = nil, mxPatterns: [String]? = nil) {
        self.time = time; self.domain = domain; self.mx = mx; self.address = address; self.sendingAddress = sendingAddress
        self.result = result
        self.policyType = policyType; self.policyStrings = policyStrings; self.mxPatterns = mxPatterns
    }

    enum CodingKeys: String, CodingKey {
        case time, domain, mx, address, result, sendingAddress = "sending_address"
        case policyType = "policy_type", policyStrings = "policy_strings", mxPatterns = "mx_patterns"
    }
}

/// The session records of a run, gathered from the delivering threads and written
/// to the log once a round is done (one locked append, not one per session).
public final class TLSSessionRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var pending: [TLSSessionRecord] = []
    public let log: TLSSessionLog

    public init(log: TLSSessionLog) { self.log = log }

    public func note(_ record: TLSSessionRecord) {
        lock.lock(); pending.append(record); lock.unlock()
    }

    /// Appends what was noted since the last flush.
    public func flush() throws {
        lock.lock(); let records = pending; pending = []; lock.unlock()
        try log.append(records)
    }
}

/// The session log: one JSON object per line, appended by every sl-deliver and
/// pruned by the report, all under the lock of a SharedStateFile: a prune renames
/// a new file into place, and an append waiting for the lock must then write to
/// that file, not to the one renamed away (which it would if it locked the log
/// itself).
public struct TLSSessionLog: Sendable {
    public let path: String
    public init(path: String) { self.path = path }

    public func append(_ records: [TLSSessionRecord]) throws {
        guard !records.isEmpty else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var text = Bytes()
        for r in records { text += Array(try encoder.encode(r)) + [0x0A] }
        try SharedStateFile.locked(path, what: "the TLS session log") {
            let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw TLSReportError("cannot open the TLS session log \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            try FileDescriptorIO.writeAll(fd, text)
        }
    }

    /// The records whose time falls in `interval`, and how many lines could not be
    /// read (a line cut short by a crash, a hand edit): those are skipped, not fatal.
    public func records(in interval: DateInterval) throws -> (records: [TLSSessionRecord], unreadable: Int) {
        let (all, unreadable) = try read()
        let (start, end) = (interval.start.timeIntervalSince1970, interval.end.timeIntervalSince1970)
        return (all.map(\.record).filter { $0.time >= start && $0.time < end }, unreadable)
    }

    /// Drops the records older than `date`, so the log holds what is still to be
    /// reported. An unreadable line goes with them: it can never be reported.
    public func prune(before date: Date) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        try SharedStateFile.locked(path, what: "the TLS session log") {
            var kept = Data()
            for (record, line) in try read().lines where record.time >= date.timeIntervalSince1970 {
                kept += line + [0x0A]
            }
            try SharedStateFile.replace(path, with: kept, what: "the TLS session log", mode: 0o600)
        }
    }

    /// Every readable record with its line as written, and the count of the others.
    private func read() throws -> (lines: [(record: TLSSessionRecord, line: Data)], unreadable: Int) {
        guard let data = FileManager.default.contents(atPath: path) else {
            if !FileManager.default.fileExists(atPath: path) { return ([], 0) }
            throw TLSReportError("cannot read the TLS session log \(path)")
        }
        let decoder = JSONDecoder()
        var lines: [(TLSSessionRecord, Data)] = []
        var unreadable = 0
        for line in data.split(separator: 0x0A) where !line.isEmpty {
            guard let r = try? decoder.decode(TLSSessionRecord.self, from: Data(line)) else { unreadable += 1; continue }
            lines.append((r, Data(line)))
        }
        return (lines, unreadable)
    }
}

public struct TLSReportError: SysexitReporting, CustomStringConvertible {
    public let description: String
    public var sysexit: Sysexit { .ioError }
    init(_ description: String) { self.description = description }
}

/// What a domain asks for in its `_smtp._tls` TXT record (RFC 8460 section 3).
public struct TLSRPTRecord: Sendable, Equatable {
    /// Where reports go by mail.
    public var mailto: [String]
    /// `https:` report URIs, which sl does not post to (a documented limit).
    public var https: [String]

    /// Parses the TXT records of `_smtp._tls.DOMAIN`. Exactly one record starting
    /// with `v=TLSRPTv1` counts (none, or several, mean no reporting), with an `rua`
    /// of comma-separated URIs; unknown fields are ignored, as the RFC asks. Nil when
    /// the domain asks for no reports sl can send or name.
    public init?(txt records: [String]) {
        let candidates = records.filter { $0.hasPrefix("v=TLSRPTv1") }
        guard candidates.count == 1 else { return nil }
        var rua: String?
        for (i, field) in candidates[0].split(separator: ";").enumerated() {
            let kv = field.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2 else { if i == 0 { return nil } else { continue } }
            if i == 0 { guard kv[0] == "v", kv[1] == "TLSRPTv1" else { return nil }; continue }
            if kv[0] == "rua" { rua = kv[1] }
        }
        guard let rua else { return nil }
        var mailto: [String] = [], https: [String] = []
        for uri in rua.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if uri.lowercased().hasPrefix("mailto:") {
                // One plain address: no hfields, no percent-escapes beyond what an
                // address needs; anything else is not something to mail to.
                let address = String(uri.dropFirst(7)).removingPercentEncoding ?? ""
                guard !address.contains("?"), let a = try? EmailAddress(parsing: address), a.addrSpec.count <= 254 else { continue }
                mailto.append(a.addrSpec)
            } else if uri.lowercased().hasPrefix("https://") {
                https.append(String(uri.prefix(200)))
            }
        }
        guard !mailto.isEmpty || !https.isEmpty else { return nil }
        self.mailto = mailto
        self.https = https
    }
}

/// Who sends the reports (`tls_report_*` in sl.conf).
public struct TLSReportSender: Sendable {
    /// RFC 8460 organization-name.
    public var organization: String
    /// RFC 8460 contact-info, and the reports' From: address.
    public var contact: String
    /// The submitter: this host's domain name (TLS-Report-Submitter).
    public var submitter: String

    public init(organization: String, contact: String, submitter: String) {
        self.organization = organization; self.contact = contact; self.submitter = submitter
    }
}

/// One aggregate report (RFC 8460 section 4), for one policy domain and one day.
public struct TLSReport: Encodable, Sendable {
    public struct DateRange: Encodable, Sendable {
        var start: String, end: String
        enum CodingKeys: String, CodingKey { case start = "start-datetime", end = "end-datetime" }
    }
    public struct Policy: Encodable, Sendable, Hashable {
        var type: String
        var strings: [String]?
        var domain: String
        var mxHosts: [String]?
        enum CodingKeys: String, CodingKey {
            case type = "policy-type", strings = "policy-string", domain = "policy-domain", mxHosts = "mx-host"
        }
    }
    public struct Summary: Encodable, Sendable {
        var successful: Int, failed: Int
        enum CodingKeys: String, CodingKey { case successful = "total-successful-session-count", failed = "total-failure-session-count" }
    }
    public struct FailureDetail: Encodable, Sendable {
        var result: String
        var sendingAddress: String?
        var mx: String
        var address: String?
        var count: Int
        enum CodingKeys: String, CodingKey {
            case result = "result-type", sendingAddress = "sending-mta-ip", mx = "receiving-mx-hostname"
            case address = "receiving-ip", count = "failed-session-count"
        }
    }
    public struct PolicyReport: Encodable, Sendable {
        var policy: Policy
        var summary: Summary
        var failureDetails: [FailureDetail]
        enum CodingKeys: String, CodingKey { case policy, summary, failureDetails = "failure-details" }
    }

    public var organization: String
    public var dateRange: DateRange
    public var contact: String
    public var reportID: String
    public var policies: [PolicyReport]
    /// Not part of the JSON: the domain and the day, for the mail around it.
    public let domain: String
    let interval: DateInterval

    enum CodingKeys: String, CodingKey {
        case organization = "organization-name", dateRange = "date-range", contact = "contact-info"
        case reportID = "report-id", policies
    }

    /// The reports for `interval` (a UTC day), one per domain with sessions, from
    /// that day's session records.
    public static func aggregate(_ records: [TLSSessionRecord], interval: DateInterval, sender: TLSReportSender) -> [TLSReport] {
        let byDomain = Dictionary(grouping: records, by: \.domain)
        return byDomain.keys.sorted().map { domain in
            let sessions = byDomain[domain] ?? []
            let byPolicy = Dictionary(grouping: sessions) {
                Policy(type: $0.policyType, strings: $0.policyStrings, domain: domain, mxHosts: $0.mxPatterns)
            }
            let policies = byPolicy.keys.sorted { ($0.type, ($0.strings ?? []).joined(separator: "\n")) < ($1.type, ($1.strings ?? []).joined(separator: "\n")) }.map { policy in
                let group = byPolicy[policy] ?? []
                let failures = group.filter { $0.result != TLSSessionRecord.success }
                let details = Dictionary(grouping: failures) { "\($0.result)\u{0}\($0.mx)\u{0}\($0.address ?? "")\u{0}\($0.sendingAddress ?? "")" }
                    .values.map { g in FailureDetail(result: g[0].result, sendingAddress: g[0].sendingAddress, mx: g[0].mx,
                                                     address: g[0].address, count: g.count) }
                    .sorted { ($0.result, $0.mx, $0.address ?? "") < ($1.result, $1.mx, $1.address ?? "") }
                return PolicyReport(policy: policy, summary: Summary(successful: group.count - failures.count, failed: failures.count),
                                    failureDetails: details)
            }
            let day = Self.dayText(interval.start)
            let id = "\(day)_\(domain)_\(String(UInt64.random(in: 0...UInt64.max), radix: 36))@\(sender.submitter)"
            return TLSReport(organization: sender.organization,
                             dateRange: DateRange(start: Self.timestamp(interval.start), end: Self.timestamp(interval.end)),
                             contact: sender.contact, reportID: id, policies: policies, domain: domain, interval: interval)
        }
    }

    public func json() throws -> Bytes {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }

    /// The report as mail to `recipients` (the rua addresses), RFC 8460 section 5.3:
    /// multipart/report; report-type="tlsrpt", a few words, and the gzipped JSON as
    /// application/tlsrpt+gzip named submitter!domain!begin!end!id.json.gz. Routed
    /// for sl-deliver like a notice: from the null sender, so it never bounces,
    /// TLS when offered.
    public func message(to recipients: [String], sender: TLSReportSender, date: Date) throws -> Message {
        let gz = try Gzip.compress(try json())
        let uniqueID = reportID.split(separator: "_").last.map { String($0.prefix { $0 != "@" }) } ?? "1"
        let filename = "\(sender.submitter)!\(domain)!\(Int(interval.start.timeIntervalSince1970))!\(Int(interval.end.timeIntervalSince1970) - 1)!\(uniqueID).json.gz"
        let text = """
            This is an aggregate SMTP TLS report (RFC 8460) from \(sender.submitter)
            for \(domain), covering \(Self.dayText(interval.start)) (UTC): \(policies.map { $0.summary.successful }.reduce(0, +)) sessions
            with TLS as the policy asks, \(policies.map { $0.summary.failed }.reduce(0, +)) without.

            """
        let parts = [
            try MIMEBuilder.leaf(contentType: ContentType(parsing: "text/plain; charset=us-ascii"), transferEncoding: .sevenBit,
                                 body: Array(text.utf8)),
            try MIMEBuilder.leaf(contentType: ContentType(type: "application", subtype: "tlsrpt+gzip", parameters: ["name": filename]),
                                 transferEncoding: .base64, body: gz,
                                 extraFields: [("Content-Disposition", "attachment; filename=\"\(filename)\"")]),
        ]
        let body = try MIMEBuilder.multipart(subtype: "report", parameters: ["report-type": "tlsrpt"], parts: parts)
        var head = ""
        let messageID = "<tlsrpt.\(String(UInt64.random(in: 0...UInt64.max), radix: 36))@\(sender.submitter)>"
        for (name, value) in [("From", sender.contact), ("To", recipients.joined(separator: ", ")),
                              ("Subject", "Report Domain: \(domain) Submitter: \(sender.submitter) Report-ID: <\(reportID)>"),
                              ("Date", DeliveryReport.rfc5322Date(date)), ("Message-ID", messageID),
                              ("TLS-Report-Domain", domain), ("TLS-Report-Submitter", sender.submitter),
                              ("Auto-Submitted", "auto-generated"), ("MIME-Version", "1.0")] {
            head += "\(name): \(OneLine.of(value))\r\n"
        }
        var m = try Message(bytes: Array(head.utf8) + body.serialized())
        let routing = Envelope(sender: "", recipients: recipients.map { Envelope.Recipient(address: $0) }, method: .insecure,
                               tls: .opportunistic, fallback: .insecure)
        try routing.write(into: &m.header)
        return m
    }

    static func timestamp(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: d)
    }

    static func dayText(_ d: Date) -> String { String(timestamp(d).prefix(10)) }

    /// The UTC day `text` (YYYY-MM-DD) names, as [00:00, next 00:00).
    public static func day(_ text: String) -> DateInterval? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withFullDate]
        f.timeZone = TimeZone(identifier: "UTC")
        guard text.count == 10, let start = f.date(from: text) else { return nil }
        return DateInterval(start: start, duration: 86_400)
    }

    /// Yesterday, in UTC: the day a daily cron run reports.
    public static func yesterday(now: Date = Date()) -> DateInterval {
        let today = floor(now.timeIntervalSince1970 / 86_400) * 86_400
        return DateInterval(start: Date(timeIntervalSince1970: today - 86_400), duration: 86_400)
    }
}

extension DANEPolicy {
    /// The host's TLSA records as an RFC 8460 report quotes them (policy-string,
    /// presentation format); empty when DANE applies without a usable record or
    /// its lookup failed; nil when DANE does not apply.
    public var reportStrings: [String]? {
        switch self {
        case .notApplicable: return nil
        case .encryptOnly, .lookupFailed: return []
        case .authenticate(let a):
            return a.records.map { r in
                "\(r.usage) \(r.selector) \(r.matchingType) " + r.data.map { String(format: "%02x", $0) }.joined()
            }
        }
    }
}
