#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLTestPeers
import Testing
import SLMessage

/// The delivery record against the real Postfix MX host of the test peers: an
/// sl-deliver run killed (SIGKILL) part-way through a bulk input, then fed the same
/// input again, delivers every message, and re-sends at most what was in flight
/// when it was killed. With the record off, the same rerun sends again what the
/// killed run had delivered: the control that shows the test can fail.
extension DeliverToolTests {
    /// A bulk input of `count` messages to bob@on.test, each with its own marker
    /// (and Message-ID), as one mboxrd stream.
    static func bulk(_ run: String, count: Int) -> (Bytes, [String]) {
        var stream = Bytes()
        var markers: [String] = []
        for i in 0..<count {
            let marker = "bulk-\(run)-\(i)-end"
            markers.append(marker)
            stream += bytes("From alice@clinic.test Mon Nov 30 09:00:00 2026\n")
            stream += routed(to: ["bob@on.test"], tls: "opportunistic", marker: marker)
            stream += bytes("\n")
        }
        return (stream, markers)
    }

    /// Runs sl-deliver on `input` and kills it with SIGKILL after `after` seconds.
    static func killed(_ setup: Setup, _ input: Bytes, after: Double) throws {
        let p = Process()
        p.executableURL = Tools.binDirectory.appendingPathComponent("sl-deliver")
        p.arguments = ["--config", setup.config, "--timeout", "20"]
        let stdin = Pipe()
        p.standardInput = stdin
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        try stdin.fileHandleForWriting.write(contentsOf: Data(input))
        try stdin.fileHandleForWriting.close()
        usleep(UInt32(after * 1_000_000))
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    /// Deliveries per marker at bob's mailbox.
    static func counts(_ peers: Peers, _ markers: [String]) -> [Int] {
        let all = peers.delivered(to: Peers.server("on"), containing: markers[0].split(separator: "-").prefix(2).joined(separator: "-"),
                                  atLeast: markers.count, wait: 20)
        return markers.map { m in all.filter { $0.contains("Subject: \(m)") }.count }
    }

    @Test(arguments: [0.25, 0.5, 0.9])
    func aKilledBulkRunFedAgainSendsNothingTwiceButWhatWasInFlight(after: Double) throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let run = UUID().uuidString.prefix(8).lowercased()
        let (input, markers) = Self.bulk(String(run), count: 150)
        try Self.killed(setup, input, after: after)
        let again = try setup.deliver([], input)
        #expect(again.status == 0, "\(again.stderr)")
        let counts = Self.counts(peers, markers)
        #expect(!counts.contains(0), "lost: \(counts.indices.filter { counts[$0] == 0 }.count)")
        let duplicates = counts.reduce(0) { $0 + max(0, $1 - 1) }
        // In flight at the kill: at most one transaction per connection (10 by default).
        #expect(duplicates <= 10, "\(duplicates) duplicates after a kill at \(after) s")
        print("delivery record: kill at \(after) s, \(duplicates) duplicate(s) of \(markers.count)")
    }

    @Test func withoutTheRecordARerunSendsTheDeliveredAgain() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup("delivery_record = 0")
        let run = UUID().uuidString.prefix(8).lowercased()
        let (input, markers) = Self.bulk(String(run), count: 150)
        try Self.killed(setup, input, after: 0.9)
        let again = try setup.deliver([], input)
        #expect(again.status == 0, "\(again.stderr)")
        let counts = Self.counts(peers, markers)
        #expect(!counts.contains(0))
        #expect(counts.reduce(0) { $0 + max(0, $1 - 1) } > 10, "the killed run delivered too little to show the difference: \(counts)")
    }
}

extension DeliverToolTests {
    /// A queued item that can never be worked (a NUL in its header section; its
    /// routing fields gone) is moved aside with one line and a note of why, not
    /// skipped on every run for ever; a good item beside it is delivered.
    @Test func anUnparsableQueueItemIsMovedAsideWithItsReason() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        try FileManager.default.createDirectory(atPath: setup.queue, withIntermediateDirectories: true)
        let marker = "aside-\(UUID().uuidString.prefix(8))"
        let good = "1764493200000000-00000000aaaa", nul = "1764493200000001-00000000bbbb", bare = "1764493200000002-00000000cccc"
        try Data(Self.routed(to: ["bob@on.test"], tls: "opportunistic", marker: marker)).write(to: URL(fileURLWithPath: "\(setup.queue)/\(good).eml"))
        var broken = Self.routed(to: ["bob@on.test"], tls: "opportunistic", marker: marker + "-nul")
        broken.insert(0, at: broken.firstIndex(of: 0x0A)!)
        try Data(broken).write(to: URL(fileURLWithPath: "\(setup.queue)/\(nul).eml"))
        try Data(bytes("From: a@clinic.test\nTo: bob@on.test\nSubject: \(marker)-bare\n\nno routing\n"))
            .write(to: URL(fileURLWithPath: "\(setup.queue)/\(bare).eml"))
        let run = try Tools.run("sl-deliver", ["--config", setup.config, "--run-queue"], stdin: [])
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.stderr.split(separator: "\n")
        #expect(lines.count == 2 && lines.allSatisfy { $0.contains("moved to") && $0.contains("aside") }, "\(run.stderr)")
        for id in [nul, bare] {
            #expect(FileManager.default.fileExists(atPath: "\(setup.queue)/aside/\(id).eml"))
            #expect(((try? String(contentsOfFile: "\(setup.queue)/aside/\(id).reason", encoding: .utf8)) ?? "").contains("malformed"))
        }
        #expect(peers.delivered(to: Peers.server("on"), containing: marker).count == 1)
        #expect(setup.queued.isEmpty)
        let again = try Tools.run("sl-deliver", ["--config", setup.config, "--run-queue"], stdin: [])
        #expect(again.status == 0 && again.stderr.isEmpty, "\(again.stderr)")
    }
}

extension DeliverToolTests {
    /// --list-queue shows what waits, as mailq does, and --json the same for
    /// scripts: id, arrival, size, sender, recipients, attempts, next attempt and
    /// the last reason, for messages deferred by a host that does not answer.
    @Test func theQueueIsListedForPeopleAndScripts() throws {
        let setup = try Setup()
        let empty = try setup.deliver(["--list-queue"], [])
        #expect(empty.status == 0 && empty.stdoutText == "The queue is empty.\n", "\(empty.stdoutText)\(empty.stderr)")
        let markers = (0..<2).map { "listed-\($0)-\(UUID().uuidString.prefix(6))" }
        for m in markers {
            let run = try setup.deliver([], Self.routed(to: ["fay@down.test"], tls: "opportunistic", marker: m, sender: "alice@clinic.test"))
            #expect(run.status == 0, "\(run.stderr)")
        }
        try #require(setup.queued.count == 2)
        let text = try setup.deliver(["--list-queue"], [])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdoutText.contains("from <alice@clinic.test>") && text.stdoutText.contains("  fay@down.test"))
        #expect(text.stdoutText.contains("attempts 1") && text.stdoutText.hasSuffix("-- 2 messages, 2 recipients\n"), "\(text.stdoutText)")
        let json = try setup.deliver(["--list-queue", "--json"], [])
        let entries = try json.stdoutText.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(Set(entries.compactMap { $0["id"] as? String }.map { $0 + ".eml" }) == Set(setup.queued))
        for e in entries {
            #expect(e["recipients"] as? [String] == ["fay@down.test"] && e["sender"] as? String == "alice@clinic.test")
            #expect(e["attempts"] as? Int == 1 && (e["lastReason"] as? String)?.isEmpty == false && (e["size"] as? Int ?? 0) > 0)
            #expect(e["nextAttempt"] is String && e["arrival"] is String)
        }
        #expect(try setup.deliver(["--json"], []).status == 64)
    }
}

extension DeliverToolTests {
    /// The admin's hand on one queued message: hold (no run attempts it, --force
    /// neither), release, retry now, delete silently, bounce with a report that
    /// Python's email package reads as multipart/report; an unknown id is 66.
    @Test func oneQueuedMessageCanBeHeldReleasedRetriedDeletedOrBounced() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        for m in ["steer-a", "steer-b"].map({ "\($0)-\(UUID().uuidString.prefix(6))" }) {
            let run = try setup.deliver([], Self.routed(to: ["fay@down.test"], tls: "opportunistic", marker: m, sender: "alice@on.test"))
            #expect(run.status == 0, "\(run.stderr)")
        }
        let ids = setup.queued.map { String($0.dropLast(4)) }.sorted()
        try #require(ids.count == 2)
        func state(_ id: String) throws -> [String: Any] {
            let entries = try setup.deliver(["--list-queue", "--json"], []).stdoutText.split(separator: "\n")
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            return try #require(entries.first { $0["id"] as? String == id })
        }
        let held = try setup.deliver(["--hold", ids[0]], [])
        #expect(held.status == 0 && held.stdoutText.contains("held"), "\(held.stderr)")
        #expect(try state(ids[0])["held"] as? Bool == true)
        #expect(try setup.deliver(["--list-queue"], []).stdoutText.contains("HELD"))
        #expect(try setup.deliver(["--run-queue", "--force", "--timeout", "2"], []).status == 0)
        #expect(try state(ids[0])["attempts"] as? Int == 1, "a held message is not attempted")
        #expect(try state(ids[1])["attempts"] as? Int == 2)
        #expect(try setup.deliver(["--release", ids[0]], []).status == 0)
        #expect(try state(ids[0])["held"] as? Bool == false)
        let retried = try setup.deliver(["--retry", ids[0], "--timeout", "2"], [])
        #expect(retried.status == 0 && retried.stdoutText.contains("still queued"), "\(retried.stdoutText)\(retried.stderr)")
        #expect(try state(ids[0])["attempts"] as? Int == 2)

        let deleted = try setup.deliver(["--delete", ids[1]], [])
        #expect(deleted.status == 0 && deleted.stdoutText.contains("no report"))
        let bounced = try setup.deliver(["--bounce", ids[0], "--timeout", "2"], [])
        #expect(bounced.status == 0 && bounced.stdoutText.contains("a delivery report went to alice@on.test"), "\(bounced.stdoutText)\(bounced.stderr)")
        #expect(setup.queued.isEmpty)
        // The report, at Alice's mailbox (the real Postfix), read by Python's email package.
        let arrived = try #require(peers.delivered(to: Peers.server("on"), containing: "deleted from the queue by the administrator").first { $0.contains("steer-") })
        let report = installationFile(setup, "report.eml", arrived)
        let check = try Tools.runCommand(["python3", "-c", """
            import email, sys
            m = email.message_from_binary_file(open(sys.argv[1], "rb"))
            assert m.get_content_type() == "multipart/report", m.get_content_type()
            assert m.get_param("report-type") == "delivery-status"
            status = [p for p in m.walk() if p.get_content_type() == "message/delivery-status"][0]
            text = str(status)
            assert "Status: 5.0.0" in text and "fay@down.test" in text and "deleted from the queue" in text, text
            print("ok")
            """, report], stdin: [])
        #expect(check.status == 0, "\(check.stdoutText)\(check.stderr)")
        #expect(try setup.deliver(["--hold", "1764493200000000-00000000ffff"], []).status == 66)
        #expect(try setup.deliver(["--hold", ids[0], "--delete", ids[0]], []).status == 64)
    }
}

/// `text` written to a file in the setup's directory, for a program that reads files.
func installationFile(_ setup: DeliverToolTests.Setup, _ name: String, _ text: String) -> String {
    let path = setup.dir.appendingPathComponent(name).path
    try? text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

extension DeliverToolTests {
    /// delay_warning_time: a message still queued after it gets one "delayed"
    /// report to its sender (Action: delayed, Will-Retry-Until), read by Python's
    /// email package at the sender's real mailbox; the next run sends none.
    @Test func aLateMessageWarnsItsSenderOnce() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup("delay_warning_time = 0.0003")      // about a second
        let marker = "late-\(UUID().uuidString.prefix(8))"
        let first = try setup.deliver(["--timeout", "2"], Self.routed(to: ["fay@down.test"], tls: "opportunistic", marker: marker, sender: "alice@on.test"))
        #expect(first.status == 0 && setup.queued.count == 1, "\(first.stderr)")
        sleep(2)
        #expect(try setup.deliver(["--run-queue", "--force", "--timeout", "2"], []).status == 0)
        let warnings = peers.delivered(to: Peers.server("on"), containing: "Delayed Mail").filter { $0.contains(marker) }
        try #require(warnings.count == 1)
        let check = try Tools.runCommand(["python3", "-c", """
            import email, sys
            m = email.message_from_string(sys.stdin.read())
            assert m.get_content_type() == "multipart/report" and m.get_param("report-type") == "delivery-status"
            status = str([p for p in m.walk() if p.get_content_type() == "message/delivery-status"][0])
            assert "Action: delayed" in status and "Will-Retry-Until:" in status and "fay@down.test" in status, status
            print("ok")
            """], stdin: bytes(warnings[0]))
        #expect(check.status == 0, "\(check.stdoutText)\(check.stderr)")
        #expect(try setup.deliver(["--run-queue", "--force", "--timeout", "2"], []).status == 0)
        usleep(1_500_000)
        #expect(peers.delivered(to: Peers.server("on"), containing: "Delayed Mail", wait: 0).filter { $0.contains(marker) }.count == 1)
        #expect(setup.queued.count == 1, "the message itself is still queued")
    }
}

extension DeliverToolTests {
    /// SIGTERM part-way through a bulk input: the transactions in flight finish
    /// and are recorded, nothing new starts, the rest is queued (no attempt
    /// counted), exit 0: the input was taken whole. The next queue run delivers the
    /// rest, and every message arrives exactly once.
    @Test func aTerminatedRunFinishesWhatIsInFlightAndQueuesTheRest() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let run = UUID().uuidString.prefix(8).lowercased()
        let (input, markers) = Self.bulk(String(run), count: 150)
        let stdin = Pipe()
        let (p, stderr) = try setup.started(input: stdin)
        try stdin.fileHandleForWriting.write(contentsOf: Data(input))
        try stdin.fileHandleForWriting.close()
        usleep(UInt32(250_000 * Tools.slowdown))
        kill(p.processIdentifier, SIGTERM)
        let complaint = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationReason == .exit && p.terminationStatus == 0, "\(p.terminationReason) \(p.terminationStatus) \(complaint)")
        let queued = setup.queued.count
        #expect(complaint.contains("stopped on request") || queued == 0, "\(complaint)")
        // Nothing not tried counts an attempt: every queued item is due at once.
        let entries = try setup.deliver(["--list-queue", "--json"], []).stdoutText.split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(entries.allSatisfy { $0["attempts"] as? Int == 0 }, "\(entries.prefix(2))")
        #expect(try setup.deliver(["--run-queue"], []).status == 0)
        #expect(setup.queued.isEmpty)
        let counts = Self.counts(peers, markers)
        #expect(counts.allSatisfy { $0 == 1 }, "lost \(counts.filter { $0 == 0 }.count), duplicated \(counts.filter { $0 > 1 }.count)")
        print("SIGTERM at 0.25 s: \(queued) of \(markers.count) queued, the rest delivered; every message once")
    }
}

extension DeliverToolTests {
    /// The record keys on the size too: another message under a reused Message-ID
    /// is delivered, the same message again is not.
    @Test func aReusedMessageIDDoesNotHideAnotherMessage() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let marker = "reused-\(UUID().uuidString.prefix(8))"
        let first = Self.routed(to: ["bob@on.test"], tls: "opportunistic", marker: marker, body: "First text.\n")
        let other = Self.routed(to: ["bob@on.test"], tls: "opportunistic", marker: marker, body: "A different, longer text.\n")
        for input in [first, other, first] { #expect(try setup.deliver([], input).status == 0) }
        let arrived = peers.delivered(to: Peers.server("on"), containing: marker, atLeast: 2)
        usleep(1_000_000)
        #expect(arrived.count == 2 && peers.delivered(to: Peers.server("on"), containing: marker, wait: 0).count == 2)
        #expect(arrived.contains { $0.contains("First text.") } && arrived.contains { $0.contains("A different, longer text.") })
    }
}

extension DeliverToolTests {
    /// The queue commands on a real queue: the Postfix MX of later.test answers
    /// 451 to every recipient. The deferred messages are listed with Postfix's
    /// reason, held, released and retried (still deferred), deleted; and when the
    /// lifetime is over the sender gets a report that Python's email package reads
    /// as multipart/report (Action: failed, the 451 in the diagnostic).
    @Test func aRealMXThatAnswers451KeepsMessagesQueuedUntilTheLifetimeEndsInAReport() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup("queue_lifetime = 0.00003")       // about 2.6 seconds
        let markers = (0..<3).map { "later-\($0)-\(UUID().uuidString.prefix(6))" }
        for m in markers {
            let run = try setup.deliver([], Self.routed(to: ["gil@later.test"], tls: "opportunistic", marker: m, sender: "alice@on.test"))
            #expect(run.status == 0, "\(run.stderr)")
        }
        try #require(setup.queued.count == 3)
        let entries = try setup.deliver(["--list-queue", "--json"], []).stdoutText.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(entries.count == 3)
        #expect(entries.allSatisfy { ($0["lastReason"] as? String).map { $0.hasPrefix("451 4.3.2") && $0.contains("Try again later") } == true }, "\(entries)")
        let ids = entries.compactMap { $0["id"] as? String }.sorted()
        // hold one, delete one silently, retry the third: still deferred, still queued
        #expect(try setup.deliver(["--hold", ids[0]], []).status == 0)
        #expect(try setup.deliver(["--delete", ids[1]], []).status == 0)
        let retried = try setup.deliver(["--retry", ids[2]], [])
        #expect(retried.status == 0 && retried.stdoutText.contains("451"), "\(retried.stdoutText)\(retried.stderr)")
        #expect(Set(setup.queued) == [ids[0] + ".eml", ids[2] + ".eml"])
        // the lifetime ends: a run bounces what is not held, with a report
        sleep(3)
        let expired = try setup.deliver(["--run-queue", "--force"], [])
        #expect(expired.status == 0, "\(expired.stderr)")
        #expect(setup.queued == [ids[0] + ".eml"], "the held message waits for its release: \(expired.stderr)")
        let report = try #require(peers.delivered(to: Peers.server("on"), containing: markers[2]).first { $0.contains("multipart/report") })
        let check = try Tools.runCommand(["python3", "-c", """
            import email, sys
            m = email.message_from_string(sys.stdin.read())
            assert m.get_content_type() == "multipart/report" and m.get_param("report-type") == "delivery-status", m.get_content_type()
            status = str([p for p in m.walk() if p.get_content_type() == "message/delivery-status"][0])
            assert "Action: failed" in status and "gil@later.test" in status and "451 4.3.2" in status, status
            print("ok")
            """], stdin: bytes(report))
        #expect(check.status == 0, "\(check.stdoutText)\(check.stderr)")
        // released after its lifetime, the held one ends the same way
        #expect(try setup.deliver(["--release", ids[0]], []).status == 0)
        #expect(try setup.deliver(["--run-queue"], []).status == 0)
        #expect(setup.queued.isEmpty)
        #expect(peers.delivered(to: Peers.server("on"), containing: markers[0]).contains { $0.contains("multipart/report") })
        #expect(peers.delivered(to: Peers.server("on"), containing: markers[1], wait: 1).isEmpty, "deleted silently")
    }
}
