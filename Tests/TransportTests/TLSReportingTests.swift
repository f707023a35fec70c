import Foundation
import Testing
@testable import SLTransport

/// RFC 8460's pieces in process: the `_smtp._tls` record (attacker input: the
/// domain's own DNS), the aggregation, and the session log under concurrent writers.
@Suite struct TLSReportingTests {
    @Test(arguments: [
        (["v=TLSRPTv1; rua=mailto:reports@example.org"], ["reports@example.org"], 0),
        (["v=TLSRPTv1;rua=mailto:a@example.org,mailto:b@example.net"], ["a@example.org", "b@example.net"], 0),
        (["v=TLSRPTv1; rua=https://reports.example.org/tlsrpt"], [], 1),
        (["v=TLSRPTv1; rua=mailto:a@example.org, https://r.example.org/x"], ["a@example.org"], 1),
        (["v=TLSRPTv1; foo=bar; rua=mailto:a@example.org"], ["a@example.org"], 0),
        (["v=TLSRPTv1; rua=mailto:tls%2Breports@example.org"], ["tls+reports@example.org"], 0),
        (["spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.org"], ["a@example.org"], 0),
    ])
    func recordsThatAskForReports(_ txt: [String], _ mailto: [String], _ https: Int) throws {
        let r = try #require(TLSRPTRecord(txt: txt))
        #expect(r.mailto == mailto)
        #expect(r.https.count == https)
    }

    @Test(arguments: [
        [],
        ["v=TLSRPTv1"],                                                        // no rua
        ["v=TLSRPTv2; rua=mailto:a@example.org"],                              // another version
        ["rua=mailto:a@example.org; v=TLSRPTv1"],                              // v= not first
        ["v=TLSRPTv1; rua=mailto:a@example.org", "v=TLSRPTv1; rua=mailto:b@example.org"],  // two records
        ["v=TLSRPTv1; rua=mailto:not an address"],
        ["v=TLSRPTv1; rua=mailto:a@example.org?subject=x"],                    // hfields
        ["v=TLSRPTv1; rua=mailto:a@example.org%0D%0ABcc:victim@example.net"],  // a header smuggled in
        ["v=TLSRPTv1; rua=ftp://example.org/x, http://example.org/y"],         // nothing sl or the RFC sends to
        ["v=TLSRPTv1; rua=mailto:" + String(repeating: "a", count: 300) + "@example.org"],
        ["v=TLSRPTv1; rua=" + String(repeating: ",", count: 10_000)],
    ])
    func recordsThatAskForNothingSlCanSend(_ txt: [String]) throws {
        #expect(TLSRPTRecord(txt: txt) == nil)
    }

    static let day = TLSReport.day("2026-11-29")!

    @Test func sessionsAreCountedPerDomainPolicyAndFailure() throws {
        let t = Self.day.start.timeIntervalSince1970 + 3600
        let records = [
            TLSSessionRecord(time: t, domain: "b.example", mx: "mx.b.example", address: "192.0.2.1", result: "success"),
            TLSSessionRecord(time: t, domain: "b.example", mx: "mx.b.example", address: "192.0.2.1", result: "certificate-expired"),
            TLSSessionRecord(time: t, domain: "b.example", mx: "mx.b.example", address: "192.0.2.1", result: "certificate-expired"),
            TLSSessionRecord(time: t, domain: "b.example", mx: "mx2.b.example", address: "192.0.2.2", result: "starttls-not-supported"),
            TLSSessionRecord(time: t, domain: "a.example", mx: "mx.a.example", address: nil, result: "success"),
        ]
        let sender = TLSReportSender(organization: "Org", contact: "postmaster@sender.example", submitter: "sender.example")
        let reports = TLSReport.aggregate(records, interval: Self.day, sender: sender)
        #expect(reports.map(\.domain) == ["a.example", "b.example"])
        let b = try #require(reports.last?.policies.first)
        #expect(b.summary.successful == 1 && b.summary.failed == 3)
        #expect(b.failureDetails.map { "\($0.result) \($0.mx) \($0.count)" } == [
            "certificate-expired mx.b.example 2", "starttls-not-supported mx2.b.example 1"])
        let json = String(decoding: try reports[1].json(), as: UTF8.self)
        #expect(json.contains("\"start-datetime\":\"2026-11-29T00:00:00Z\"") && json.contains("\"end-datetime\":\"2026-11-30T00:00:00Z\""))
        #expect(json.contains("\"policy-type\":\"no-policy-found\"") && !json.contains("\"domain\""))
        #expect(reports[0].reportID != reports[1].reportID)
    }

    @Test func theLogKeepsEveryRecordFromConcurrentWritersAndPrunesByDay() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tlsrpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = TLSSessionLog(path: dir.appendingPathComponent("sessions.jsonl").path)
        let t = Self.day.start.timeIntervalSince1970
        DispatchQueue.concurrentPerform(iterations: 8) { w in
            let records = (0..<50).map { i in
                TLSSessionRecord(time: t + Double(w * 3600 + i), domain: "d\(w).example", mx: "mx", address: nil, result: "success")
            }
            try! log.append(records)
        }
        // and one from the day before, and a line cut short
        try log.append([TLSSessionRecord(time: t - 10, domain: "old.example", mx: "mx", address: nil, result: "success")])
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log.path))
        try handle.seekToEnd(); try handle.write(contentsOf: Data("{\"time\":1".utf8)); try handle.close()
        let (records, unreadable) = try log.records(in: Self.day)
        #expect(records.count == 400 && unreadable == 1)
        #expect(try log.records(in: DateInterval(start: Self.day.start.addingTimeInterval(-86_400), duration: 86_400)).records.count == 1)
        try log.prune(before: Self.day.start)
        let after = try log.records(in: DateInterval(start: .distantPast, end: .distantFuture))
        #expect(after.records.count == 400 && after.unreadable == 0)
    }

    /// A prune renames a new log into place while sl-deliver runs append to it: an
    /// append waiting for the lock must land in the new file, not in the old one.
    @Test func appendsDuringPrunesAreKept() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tlsrpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = TLSSessionLog(path: dir.appendingPathComponent("sessions.jsonl").path)
        let t = Self.day.start.timeIntervalSince1970
        try log.append([TLSSessionRecord(time: t - 10, domain: "old.example", mx: "mx", address: nil, result: "success")])
        DispatchQueue.concurrentPerform(iterations: 5) { w in
            for i in 0..<60 {
                if w == 0 {
                    try! log.prune(before: Self.day.start)
                } else {
                    try! log.append([TLSSessionRecord(time: t + Double(w * 1000 + i), domain: "d\(w).example", mx: "mx", address: nil, result: "success")])
                }
            }
        }
        #expect(try log.records(in: Self.day).records.count == 240)
    }
}
