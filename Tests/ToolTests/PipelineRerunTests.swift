import Foundation
import SLTestPeers
import Testing
import SLMessage

/// Feeding the same stream to sl-send again (the recovery for a run that did not
/// exit 0) must not send any recipient a second copy, although encryption and
/// sealing make new octets of every message each time (new session keys, a new
/// escrow link, a notice with a new Message-ID): the delivery record knows the
/// copies by the digest sl-classify stamps on the message they were made from.
extension PipelineContractTests {
    @Test func feedingTheSameStreamAgainSendsNoRecipientASecondCopy() throws {
        let peers = try Peers.shared.get()
        try home.ensureKey("pat@on.test")
        let reach = peers.configuration.split(separator: "\n").filter {
            $0.hasPrefix("dns_server") || $0.hasPrefix("smtp_port") || $0.hasPrefix("tls_ca_file")
        }.joined(separator: "\n")
        let dir = try setup([Card.pgp("pat@on.test", try home.export("pat@on.test")), Card.question("erin@on.test", "Street?", "Elm")],
                            reach + "\nstate_directory = state\nescrow_url = https://portal.clinic.test")
        let tag = "rerun\(UUID().uuidString.prefix(8).lowercased())"
        // Two messages; the second has no Message-ID at all.
        let stream = bytes("From alice@clinic.test Mon Nov 30 09:00:00 2026\nFrom: Alice \(tag) <alice@clinic.test>\nTo: pat@on.test, erin@on.test\n"
                           + "Subject: one\nMessage-ID: <\(tag)@clinic.test>\n\nFirst.\n\n"
                           + "From alice@clinic.test Mon Nov 30 09:00:00 2026\nFrom: Alice \(tag) <alice@clinic.test>\nTo: pat@on.test\n"
                           + "Subject: two\n\nSecond, without a Message-ID.\n\n")
        let send = try Installed.bin("sl-send")
        for run in 1...2 {
            let result = try Tools.runCommand([send, "--config", conf(dir), "-t"], stdin: stream)
            #expect(result.status == 0, "run \(run): \(result.stderr)")
        }
        // pat: the two PGP copies; erin: one notice. Once each, after two runs.
        let arrived = peers.delivered(to: Peers.server("on"), containing: tag, atLeast: 3, wait: 10)
        usleep(1_000_000)
        let settled = peers.delivered(to: Peers.server("on"), containing: tag, wait: 0)
        #expect(arrived.count == 3 && settled.count == 3, "\(settled.count) copies arrived")
        #expect(settled.filter { $0.contains("multipart/encrypted") }.count == 2)
        #expect(settled.filter { !$0.contains("multipart/encrypted") }.count == 1)
        // The second run's records say why nothing went.
        let records = try String(contentsOfFile: dir.path + "/state/audit.jsonl", encoding: .utf8)
        #expect(records.components(separatedBy: "delivered earlier (the delivery record has sha256:").count - 1 == 3, "\(records)")
    }
}
