import Foundation
import SLTestPeers
import Testing
import SLMessage

/// A cron bulk send as an admin runs it: sl-send (the five stages, streaming) on
/// 5,000 messages with one malformed in the middle, to the real Postfix MX of the
/// test peers, under a pseudo-terminal (script(1)) so that progress shows.
extension DeliverToolTests {
    @Test func aBulkSendKeepsGoingPastAMalformedMessageAndShowsProgress() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup("ask_sender = no\nfallback = insecure\ntls_probe = no\nstate_directory = state")
        let tag = "bulk5k\(UUID().uuidString.prefix(6).lowercased())"
        let count = 5000, bad = 2500
        var stream = Bytes()
        for i in 0..<count {
            let subject = i == bad ? "\(tag)-\(i)-broken\u{0}" : "\(tag)-\(i)-end"
            stream += bytes("From alice@clinic.test Mon Nov 30 09:00:00 2026\nFrom: Alice <alice@clinic.test>\nTo: bob@on.test\n"
                            + "Subject: \(subject)\nMessage-ID: <\(tag)-\(i)@clinic.test>\n\nNewsletter \(i).\n\n")
        }
        let input = setup.dir.appendingPathComponent("bulk.mbox").path
        try Data(stream).write(to: URL(fileURLWithPath: input))
        let rejects = setup.dir.appendingPathComponent("rejects.mbox").path
        let send = try Installed.bin("sl-send")
        let status = setup.dir.appendingPathComponent("status").path
        // script(1) gives the pipeline a terminal on stderr; the exit status comes back in a file.
        let command = "\(send) --config \(setup.config) --reject-file \(rejects) -f alice@clinic.test -t < \(input) > /dev/null; echo $? > \(status)"
        let run = try Tools.runCommand(["script", "-qec", command, "/dev/null"], stdin: [])
        #expect(run.status == 0)
        let exit = try String(contentsOfFile: status, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(exit == "65", "sl-send exit \(exit): \(run.stdoutText.suffix(2000))")
        // progress: each stage's line, with rate, and the share read and time left where the input is a file
        let terminal = run.stdoutText
        #expect(terminal.contains("sl-classify: 4999 messages") && terminal.contains("1 set aside, done"), "\(terminal.suffix(3000))")
        #expect(terminal.contains("sl-deliver: 4999 messages"))
        #expect(terminal.range(of: #"sl-classify: \d+ messages, \d+/s, \d+%, about \d+:\d\d left"#, options: .regularExpression) != nil,
                "\(terminal.prefix(2000))")
        #expect(terminal.contains("1 malformed message set aside in \(rejects)"))
        // the reject file holds the one message, whole, with its reason
        let set = try String(contentsOfFile: rejects, encoding: .utf8)
        #expect(set.components(separatedBy: "\nFrom ").count == 1 && set.contains("Subject: \(tag)-\(bad)-broken"))
        #expect(set.hasPrefix("From alice@clinic.test") && set.contains("X-SL-Rejected: sl-classify: NUL byte in the header section"))
        // 4,999 delivered, each once
        let arrived = peers.delivered(to: Peers.server("on"), containing: tag, atLeast: count - 1, wait: 60)
        var seen: [String: Int] = [:]
        for text in arrived {
            if let r = text.range(of: #"Subject: \#(tag)-\d+-end"#, options: .regularExpression) { seen[String(text[r]), default: 0] += 1 }
        }
        #expect(seen.count == count - 1, "\(seen.count) of \(count - 1) delivered")
        #expect(seen.values.allSatisfy { $0 == 1 })
        #expect(setup.queued.isEmpty)
    }
}

extension DeliverToolTests {
    /// A stage killed while writing leaves its last message cut short: sl-deliver
    /// sends the whole messages before it, refuses the fragment (exit 65, or set
    /// aside with --reject-file), and no fragment reaches the recipient.
    @Test func aMessageCutShortByADyingStageIsNeverSent() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let tag = "cut\(UUID().uuidString.prefix(6).lowercased())"
        // Two routed messages as a stage writes them (sl-encrypt-smime passes them
        // on unchanged, declaring their lengths), the second with a long body.
        var input = Bytes()
        input += bytes("From alice@clinic.test Mon Nov 30 09:00:00 2026\n")
        input += Self.routed(to: ["bob@on.test"], tls: "opportunistic", marker: "\(tag)-whole") + bytes("\n")
        input += bytes("From alice@clinic.test Mon Nov 30 09:00:00 2026\n")
        input += Self.routed(to: ["bob@on.test"], tls: "opportunistic", marker: "\(tag)-cut",
                             body: String(repeating: "a line of the body that will be cut\n", count: 200)) + bytes("\n")
        let staged = try Tools.run("sl-encrypt-smime", ["--config", setup.config], stdin: input)
        #expect(staged.status == 0, "\(staged.stderr)")
        let out = staged.stdout
        #expect(String(decoding: out, as: UTF8.self).contains("X-SL-Length: "))
        // Cut in the middle of the second message's body.
        let cut = Array(out[..<(out.count - 3000)])
        let run = try setup.deliver([], cut)
        #expect(run.status == 65 && run.stderr.contains("the stream ends inside this message"), "\(run.stderr)")
        #expect(!peers.delivered(to: Peers.server("on"), containing: "\(tag)-whole").isEmpty)
        let rejects = setup.dir.appendingPathComponent("rejects").path
        let kept = try setup.deliver(["--reject-file", rejects], cut)
        #expect(kept.status == 65)
        #expect(try String(contentsOfFile: rejects, encoding: .utf8).contains("Subject: \(tag)-cut"))
        #expect(peers.delivered(to: Peers.server("on"), containing: "\(tag)-cut", wait: 2).isEmpty)
    }
}

extension DeliverToolTests {
    /// SIGTERM while a stream is being read: what was taken is finished or queued,
    /// the rest is not read, and the exit status (75) says the input was not taken
    /// whole. The caller feeds the same input again and a queue run follows: every
    /// message arrives exactly once.
    @Test func aStreamStoppedPartWayExits75AndFeedingItAgainSendsEachMessageOnce() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let tag = UUID().uuidString.prefix(8).lowercased()
        let (input, markers) = Self.bulk("term\(tag)", count: 2500)
        let file = setup.dir.appendingPathComponent("bulk.mbox")
        try Data(input).write(to: file)
        let (p, stderr) = try setup.started(input: try FileHandle(forReadingFrom: file))
        // Stop it once the first round is out (the record has lines), well before the end.
        let record = setup.queue + ".delivered"
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, ((try? String(contentsOfFile: record, encoding: .utf8))?.count ?? 0) == 0 { usleep(20_000) }
        kill(p.processIdentifier, SIGTERM)
        let complaint = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 75, "\(complaint)")
        #expect(complaint.contains("stopped on request after taking"), "\(complaint)")
        let again = try setup.deliver([], input)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try setup.deliver(["--run-queue", "--force"], []).status == 0)
        #expect(setup.queued.isEmpty)
        let counts = Self.counts(peers, markers)
        #expect(counts.allSatisfy { $0 == 1 }, "lost \(counts.filter { $0 == 0 }.count), duplicated \(counts.filter { $0 > 1 }.count)")
    }
}

extension DeliverToolTests {
    /// sl-deliver behind a slow stage: what it has taken goes as soon as it has
    /// caught up with its input (not after a full round), and SIGTERM while it waits
    /// for more ends it at once: exit 75, the messages taken delivered, the input
    /// not taken whole.
    @Test func behindASlowStageItDeliversWhatItHasAndStopsWhileWaiting() throws {
        let peers = try Peers.shared.get()
        let setup = try Setup()
        let tag = UUID().uuidString.prefix(8).lowercased()
        let (input, markers) = Self.bulk("slow\(tag)", count: 3)
        let stdin = Pipe()
        let (p, stderr) = try setup.started(input: stdin)
        try stdin.fileHandleForWriting.write(contentsOf: Data(input))      // and keep it open
        // The last message of an mbox is whole only at the next From line or the
        // end: the first two go while the input is still open, the third waits.
        let counts = Self.counts(peers, Array(markers.prefix(2)))
        #expect(counts == [1, 1], "delivered while the input is still open: \(counts)")
        kill(p.processIdentifier, SIGTERM)
        let started = Date()
        let complaint = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(p.terminationStatus == 75 && complaint.contains("after taking 2 messages"), "\(p.terminationStatus) \(complaint)")
        try? stdin.fileHandleForWriting.close()
        #expect(peers.delivered(to: Peers.server("on"), containing: markers[2], wait: 1).isEmpty, "the third was not taken")
    }
}
