import Foundation
import SLCommand
import SLMessage
import SLPolicy
import SLTransport

/// `sl-tls-probe --report`: a day of sl-deliver's TLS session notes (tls_reporting)
/// as RFC 8460 aggregate reports, one per domain that asks for them in its
/// `_smtp._tls` TXT record, written as an mboxrd stream for sl-deliver.
struct TLSReportTool {
    var configurationPath: String?
    /// YYYY-MM-DD (UTC); nil: yesterday.
    var day: String?
    var destination = TransportOptions()

    static let tool = "sl-tls-probe"

    /// 0 when every domain with sessions was looked up; 75 when a lookup failed for
    /// now: its sessions stay in the log and the next run reports them.
    func run() throws -> Sysexit {
        let configuration = try ConfigurationLocation.loadIfPresent(configurationPath)
        let installation = configuration?.installation ?? InstallationSettings()
        let source = configuration?.source ?? ConfigurationLocation.defaultPath
        guard let logPath = installation.effectiveTLSReportLog else {
            throw ConfigurationError(source, 0, "--report needs the TLS session log: set tls_report_log or state_directory")
        }
        let interval: DateInterval
        if let day {
            guard let d = TLSReport.day(day) else { throw UsageError("--day must be a date, YYYY-MM-DD (UTC)") }
            interval = d
        } else {
            interval = TLSReport.yesterday()
        }
        var options = try LiveTLSCapability.options(from: installation, source: source, timeout: 30)
        try options.override(dns: destination.dns, port: destination.port, caFile: destination.caFile, transportMap: destination.transport)
        let hostname = installation.hostname ?? localHostName()
        let sender = TLSReportSender(organization: installation.transport.tlsReportOrganization ?? hostname,
                                     contact: installation.transport.tlsReportContact ?? "postmaster@\(hostname)",
                                     submitter: hostname)

        let log = TLSSessionLog(path: logPath)
        let (records, unreadable) = try log.records(in: interval)
        if unreadable > 0 { Diagnostics.warn(Self.tool, "\(unreadable) unreadable lines in \(logPath) skipped") }
        let reports = TLSReport.aggregate(records, interval: interval, sender: sender)
        let resolver = try options.makeResolver()
        let staged = try StagedOutput()
        let writer = MboxWriter(sink: staged.sink)
        var sent = 0, notAsked = 0, retry = 0
        for report in reports {
            let asked: TLSRPTRecord?
            do {
                asked = try resolver.txt("_smtp._tls.\(report.domain)").flatMap { TLSRPTRecord(txt: $0) }
            } catch DNSError.noSuchDomain {
                asked = nil
            } catch {
                Diagnostics.warn(Self.tool, "\(report.domain): \(error); its sessions stay for the next run")
                retry += 1
                continue
            }
            guard let asked else { notAsked += 1; continue }
            if !asked.https.isEmpty {
                Diagnostics.warn(Self.tool, "\(report.domain) asks for reports at \(asked.https.joined(separator: ", ")): sl sends reports by mail only")
            }
            guard !asked.mailto.isEmpty else { notAsked += 1; continue }
            try writer.write(try report.message(to: asked.mailto, sender: sender, date: Date()))
            sent += 1
        }
        try staged.commit(to: 1)
        // Kept: the reported day and later, so that a run again reports again. Gone:
        // what is older, reported by earlier runs. A failed lookup keeps everything.
        if retry == 0 { try log.prune(before: interval.start) }
        // Said at a terminal only: from cron, output is mail to the administrator.
        if Diagnostics.stderrIsTerminal {
            let dayText = String(ISO8601DateFormatter().string(from: interval.start).prefix(10))
            Diagnostics.warn(Self.tool, "\(dayText): \(records.count) sessions to \(reports.count) domains; \(sent) reports written, \(notAsked) domains ask for none")
        }
        return retry > 0 ? .tempFail : .ok
    }
}
