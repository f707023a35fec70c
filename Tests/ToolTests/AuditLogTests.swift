#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import SLMessage
import SLTestPeers

/// The audit log as an admin uses it: on by default, one record per recipient and
/// outcome, naming the queue item, the attempt, the escrow copy and the original
/// Message-ID; or syslog.
@Suite(.serialized) struct AuditLogTests {
    let dir: URL
    var config: String { dir.appendingPathComponent("sl.conf").path }

    init() throws {
        dir = try Tools.scratch()
    }

    /// The peers' configuration with `audit` in place of its audit_log line.
    func configure(audit: String?, _ extra: String = "") throws {
        let peers = try Peers.shared.get()
        var lines = peers.configuration.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("audit_log") }
        if let audit { lines.append("audit_log = \(audit)") }
        lines += ["state_directory = state", extra]
        try lines.joined(separator: "\n").appending("\n").write(toFile: config, atomically: true, encoding: .utf8)
    }

    static func records(_ path: String) throws -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func routed(_ to: String, marker: String, method: String = "insecure", parameters: String = "") -> Bytes {
        bytes("X-SL-Version: 1\nX-SL-Envelope-From: alice@clinic.test\nX-SL-Envelope-To: \(to)\(parameters)\nX-SL-Method: \(method)\n"
              + "X-SL-TLS: opportunistic\nX-SL-Fallback: bounce\nFrom: alice@clinic.test\nTo: \(to)\nSubject: \(marker)\n"
              + "Message-ID: <\(marker)@clinic.test>\n\nbody\n")
    }

    @Test func theAuditLogIsOnByDefaultInTheStateDirectory() throws {
        try configure(audit: nil)
        let marker = "a-\(UUID().uuidString)"
        let run = try Tools.run("sl-deliver", ["--config", config], stdin: routed("bob@on.test", marker: marker))
        #expect(run.status == 0, "\(run.stderr)")
        let records = try Self.records(dir.path + "/state/audit.jsonl")
        let r = try #require(records.first { $0["message_id"] as? String == "<\(marker)@clinic.test>" })
        #expect(r["recipient"] as? String == "bob@on.test" && r["outcome"] as? String == "delivered")
        #expect(r["attempt"] as? Int == 1 && r["retry"] == nil && r["queue_id"] == nil)

        // off is off
        try configure(audit: "off")
        try? FileManager.default.removeItem(atPath: dir.path + "/state/audit.jsonl")
        let quiet = try Tools.run("sl-deliver", ["--config", config], stdin: routed("bob@on.test", marker: marker + "-off"))
        #expect(quiet.status == 0, "\(quiet.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/state/audit.jsonl"))
    }

    @Test func aRetriedClassificationSaysItIsARetry() throws {
        try configure(audit: "audit.jsonl", "ask_sender = no\nfallback = insecure\ntls_probe = no")
        let message = bytes("From: alice@clinic.test\nTo: bob@example.org\nSubject: s\nMessage-ID: <retry-\(UUID().uuidString)@clinic.test>\n\nbody\n")
        for _ in 1...2 {
            let run = try Tools.run("sl-classify", ["--config", config, "-t"], stdin: message)
            #expect(run.status == 0, "\(run.stderr)")
        }
        let records = try Self.records(dir.path + "/audit.jsonl").filter { $0["tool"] as? String == "sl-classify" }
        #expect(records.count == 2)
        #expect(records.first?["retry"] == nil)
        #expect(records.last?["retry"] as? Bool == true)
        // another message is no retry
        let other = try Tools.run("sl-classify", ["--config", config, "-t"],
                                  stdin: bytes("From: alice@clinic.test\nTo: bob@example.org\nSubject: s\nMessage-ID: <other-\(UUID().uuidString)@clinic.test>\n\nbody\n"))
        #expect(other.status == 0)
        #expect(try Self.records(dir.path + "/audit.jsonl").last?["retry"] == nil)
    }

    @Test func escrowNoticesAreRecordedWithTheEscrowCopyAndTheOriginalMessageID() throws {
        try configure(audit: "audit.jsonl", "escrow_url = https://portal.clinic.test")
        let marker = "e-\(UUID().uuidString)"
        let pack = try Tools.run("sl-escrow-pack", ["--config", config],
                                 stdin: routed("zed@on.test", marker: marker, method: "escrow", parameters: "; escrow=login"))
        #expect(pack.status == 0, "\(pack.stderr)")
        let deliver = try Tools.run("sl-deliver", ["--config", config], stdin: pack.stdout)
        #expect(deliver.status == 0, "\(deliver.stderr)")
        let records = try Self.records(dir.path + "/audit.jsonl")
        let sealed = try #require(records.first { $0["tool"] as? String == "sl-escrow-pack" })
        let sent = try #require(records.first { $0["tool"] as? String == "sl-deliver" })
        let id = try #require(sealed["escrow_id"] as? String)
        #expect(!id.isEmpty && sealed["outcome"] as? String == "sealed" && sealed["recipient"] as? String == "zed@on.test")
        #expect(sealed["message_id"] as? String == "<\(marker)@clinic.test>")
        #expect(sent["escrow_id"] as? String == id && sent["outcome"] as? String == "delivered")
        #expect(sent["original_message_id"] as? String == "<\(marker)@clinic.test>")
        // the id is the one sl-escrow lists
        let list = try Tools.run("sl-escrow", ["list", "--config", config], stdin: [])
        #expect(list.stdoutText.contains(id), "\(list.stdoutText)")
        // and no routing field reached the recipient
        let peers = try Peers.shared.get()
        let arrived = try #require(peers.delivered(to: Peers.server("on"), containing: "zed@on.test").last)
        #expect(!arrived.contains("X-SL-"))
    }

    /// Syslog as MTAs log: facility mail, one record per message. The peer is a
    /// datagram socket at /dev/log that this test binds (no syslog daemon runs on
    /// the test machine; rsyslog would read the same datagrams).
    @Test func syslogGetsOneMailInfoMessagePerRecord() throws {
        try #require(access("/dev/log", F_OK) != 0, "a syslog daemon owns /dev/log here; this test needs it free")
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd); unlink("/dev/log") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { p in
            for (i, b) in "/dev/log".utf8.enumerated() { p[i] = b }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0)
        chmod("/dev/log", 0o666)
        try configure(audit: "syslog")
        let marker = "s-\(UUID().uuidString)"
        let run = try Tools.run("sl-deliver", ["--config", config], stdin: routed("bob@on.test", marker: marker))
        #expect(run.status == 0, "\(run.stderr)")
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 8192)
        let n = recv(fd, &buffer, buffer.count, 0)
        try #require(n > 0)
        let datagram = String(decoding: buffer[..<n], as: UTF8.self)
        // <22>: facility mail (2) * 8 + info (6)
        #expect(datagram.hasPrefix("<22>"), "\(datagram)")
        #expect(datagram.contains("sl-deliver["))
        #expect(datagram.contains("\"recipient\":\"bob@on.test\"") && datagram.contains(marker), "\(datagram)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/state/audit.jsonl"))
    }
}
