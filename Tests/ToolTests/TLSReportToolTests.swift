import Foundation
import Testing
import SLMessage
import SLTestPeers

/// RFC 8460 TLS reporting end to end: sl-deliver notes each session's TLS (real
/// Postfix with and without STARTTLS), `sl-tls-probe --report` turns the day into
/// reports for the domains whose `_smtp._tls` record asks (dnsmasq), and sl-deliver
/// delivers them. The reports' JSON is checked against RFC 8460's fields, written
/// as a JSON schema (TLSRPT/report.schema.json), by python3-jsonschema.
@Suite(.serialized) struct TLSReportToolTests {
    struct Setup {
        let dir: URL
        var config: String { dir.appendingPathComponent("sl.conf").path }
        var log: String { dir.appendingPathComponent("tls-sessions.jsonl").path }

        init() throws {
            let peers = try Peers.shared.get()
            dir = try Tools.scratch()
            try (peers.configuration + """
            queue_directory = queue
            tls_reporting = yes
            tls_report_log = tls-sessions.jsonl
            tls_report_organization = Clinic Test
            tls_report_contact = postmaster@client.test

            """).write(toFile: config, atomically: true, encoding: .utf8)
        }
    }

    static let schema = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("TLSRPT/report.schema.json").path

    static func today() -> String { String(ISO8601DateFormatter().string(from: Date()).prefix(10)) }

    /// Errors python3-jsonschema finds in `json` (empty: valid).
    static func schemaErrors(_ json: Bytes) throws -> String {
        let file = try Tools.scratch().appendingPathComponent("report.json").path
        try Data(json).write(to: URL(fileURLWithPath: file))
        let check = """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1])); report = json.load(open(sys.argv[2]))
            errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(report)]
            print("\\n".join(errors))
            """
        let run = try Tools.runCommand(["python3", "-c", check, schema, file], stdin: [])
        guard run.status == 0 else { throw UsageFailure("the schema check did not run: \(run.stderr)") }
        return String(decoding: run.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The JSON inside a report message: base64, then gzip, undone by gzip(1).
    static func reportJSON(_ m: Message) throws -> (json: Bytes, filename: String) {
        let entity = try MIMEEntity.parse(try m.bytes())
        #expect(entity.contentType.mimeType == "multipart/report")
        #expect(entity.contentType.parameter("report-type") == "tlsrpt")
        let part = try #require(entity.parts.first { $0.contentType.mimeType == "application/tlsrpt+gzip" })
        let filename = try #require(part.contentType.parameter("name"))
        let gz = try #require(Data(base64Encoded: String(decoding: part.body, as: UTF8.self), options: .ignoreUnknownCharacters))
        #expect(gz.prefix(2) == Data([0x1F, 0x8B]))
        let run = try Tools.runCommand(["gzip", "-dc"], stdin: Array(gz))
        try #require(run.status == 0, "gzip: \(run.stderr)")
        return (run.stdout, filename)
    }

    @Test func aDayOfSessionsBecomesReportsThatDeliverAndValidate() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let marker = "m-\(UUID().uuidString)"
        // One session to on.test (verified TLS), one to off.test (no STARTTLS).
        let run = try Tools.run("sl-deliver", ["--config", setup.config, "--timeout", "20"],
                                stdin: DeliverToolTests.routed(to: ["bob@on.test", "carol@off.test"], tls: "opportunistic", marker: marker))
        #expect(run.status == 0, "\(run.stderr)")
        let noted = try String(contentsOfFile: setup.log, encoding: .utf8).split(separator: "\n")
        #expect(noted.count == 2, "\(noted)")
        #expect(noted.contains { $0.contains("\"domain\":\"on.test\"") && $0.contains("\"result\":\"success\"") })
        #expect(noted.contains { $0.contains("\"domain\":\"off.test\"") && $0.contains("\"result\":\"starttls-not-supported\"") })

        let report = try Tools.run("sl-tls-probe", ["--config", setup.config, "--report", "--day", Self.today()], stdin: [])
        #expect(report.status == 0, "\(report.stderr)")
        // on.test also names an https: address, which sl does not post to: it says so
        #expect(report.stderr.contains("https://reports.on.test/v1") && report.stderr.contains("by mail only"), "\(report.stderr)")
        let messages = try Tools.messages(report.stdout)
        #expect(messages.count == 2)
        for m in messages {
            let domain = try #require(m.header["TLS-Report-Domain"])
            #expect(m.header["TLS-Report-Submitter"] == "client.test")
            #expect(m.header["From"] == "postmaster@client.test" && m.header["To"] == "tlsrpt@on.test")
            let subject = try #require(m.header["Subject"])
            #expect(subject.hasPrefix("Report Domain: \(domain) Submitter: client.test Report-ID: <"), "\(subject)")
            let (json, filename) = try Self.reportJSON(m)
            #expect(filename.hasPrefix("client.test!\(domain)!") && filename.hasSuffix(".json.gz"), "\(filename)")
            #expect(try Self.schemaErrors(json) == "", "\(String(decoding: json, as: UTF8.self))")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
            #expect(object["organization-name"] as? String == "Clinic Test")
            #expect(subject.contains("<\(object["report-id"] as? String ?? "?")>"))
            let policies = try #require(object["policies"] as? [[String: Any]])
            #expect(policies.count == 1)
            let policy = try #require(policies[0]["policy"] as? [String: Any])
            #expect(policy["policy-type"] as? String == "no-policy-found" && policy["policy-domain"] as? String == domain)
            let summary = try #require(policies[0]["summary"] as? [String: Int])
            let failures = policies[0]["failure-details"] as? [[String: Any]] ?? []
            if domain == "on.test" {
                #expect(summary["total-successful-session-count"] == 1 && summary["total-failure-session-count"] == 0)
                #expect(failures.isEmpty)
            } else {
                #expect(domain == "off.test")
                #expect(summary["total-successful-session-count"] == 0 && summary["total-failure-session-count"] == 1)
                #expect(failures.count == 1)
                #expect(failures.first?["result-type"] as? String == "starttls-not-supported")
                #expect(failures.first?["receiving-mx-hostname"] as? String == "mx.off.test")
                #expect(failures.first?["receiving-ip"] as? String == "127.0.0.3")
                #expect(failures.first?["sending-mta-ip"] as? String == "127.0.0.1")
            }
            // the validator can fail: the same report without its report-id does
            var broken = object
            broken["report-id"] = nil
            #expect(try Self.schemaErrors(Array(try JSONSerialization.data(withJSONObject: broken))) != "")
        }

        // As cron runs it: the stream goes to sl-deliver, and the reports arrive.
        let sent = try Tools.run("sl-deliver", ["--config", setup.config, "--timeout", "20"], stdin: report.stdout)
        #expect(sent.status == 0, "\(sent.stderr)")
        for m in messages {
            let id = try #require(m.header["Subject"]?.components(separatedBy: "Report-ID: <").last?.dropLast())
            #expect(peers.delivered(to: Peers.server("on"), containing: String(id)).count == 1, "report \(id)")
        }

        // The next day's run drops this day's notes: they were reported.
        let tomorrow = String(ISO8601DateFormatter().string(from: Date().addingTimeInterval(86_400)).prefix(10))
        let next = try Tools.run("sl-tls-probe", ["--config", setup.config, "--report", "--day", tomorrow], stdin: [])
        #expect(next.status == 0 && next.stdout.isEmpty, "\(next.stderr)")
        let left = try String(contentsOfFile: setup.log, encoding: .utf8)
        // what sl-deliver noted delivering the reports is today's too: dropped as well
        #expect(left.isEmpty, "\(left)")
    }

    @Test(arguments: [
        (["--report", "on.test"], "takes no domains"),
        (["--report", "--json"], "no other mode"),
        (["--day", "2026-11-29", "on.test"], "--day goes with --report"),
        (["--report", "--day", "yesterday"], "YYYY-MM-DD"),
        (["--report", "--day", "2026-13-45"], "YYYY-MM-DD"),
    ])
    func badReportArgumentsAreUsageErrors(_ args: [String], _ words: String) throws {
        let setup = try Setup()
        let run = try Tools.run("sl-tls-probe", ["--config", setup.config] + args, stdin: [])
        #expect(run.status == 64, "\(run.stderr)")
        #expect(run.stderr.contains(words) && run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
        #expect(run.stdout.isEmpty)
    }
}
