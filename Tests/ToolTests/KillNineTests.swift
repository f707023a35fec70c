#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLTestPeers
import Testing
import SLMessage

/// kill -9 at random moments, against the real Postfix MX of the test peers, of
/// first deliveries (a bulk input, fed again after the kill, as a caller does) and
/// of queue passes (`--run-queue` killed, as a cron `timeout` would, then run
/// again). Nothing may be lost, and the duplicates of a run are bounded by the
/// transactions in flight at the kill: one per connection (`--concurrency`, 10).
///
/// SL_KILL_RUNS sets the number of runs (default 10, half of each kind); the
/// acceptance run of issue 16 used 100. The distribution of duplicates per run is
/// printed.
extension DeliverToolTests {
    @Test func killNineAtRandomMomentsLosesNothingAndDuplicatesOnlyWhatWasInFlight() throws {
        let peers = try Peers.shared.get()
        let runs = environmentValue("SL_KILL_RUNS").flatMap(Int.init) ?? 10
        let perRun = 150
        var histogram: [String: [Int: Int]] = ["first delivery": [:], "queue pass": [:]]
        // How far the killed run had got: none delivered, some, or all.
        var reach: [String: [String: Int]] = ["first delivery": [:], "queue pass": [:]]
        func progress(_ tag: String) -> String {
            usleep(300_000)          // Postfix writes the mailbox just after its 250
            let n = peers.delivered(to: Peers.server("on"), containing: tag, atLeast: 0, wait: 0).count
            return n == 0 ? "killed before any delivery" : n >= perRun ? "killed after all were delivered" : "killed mid-run"
        }
        var lostTotal = 0
        // The moment of each kill is uniform over the time a run takes when it is
        // not killed, measured first for each kind, so that most kills land mid-run.
        func timed(_ body: () throws -> Void) rethrows -> Double {
            let start = Date()
            try body()
            return Date().timeIntervalSince(start)
        }
        let firstTakes = try timed {
            let setup = try Setup()
            _ = try setup.deliver([], Self.bulk("k-cal-\(UUID().uuidString.prefix(8))", count: perRun).0)
        }
        let queueRunTakes: Double = try {
            let setup = try Setup()
            try "on.test smtp:[\(Peers.deadAddress)]:\(peers.smtpPort)\n".write(toFile: setup.dir.appendingPathComponent("transport").path,
                                                                             atomically: true, encoding: .utf8)
            _ = try setup.deliver([], Self.bulk("k-calq-\(UUID().uuidString.prefix(8))", count: perRun).0)
            try "".write(toFile: setup.dir.appendingPathComponent("transport").path, atomically: true, encoding: .utf8)
            return try timed { _ = try setup.deliver(["--run-queue", "--force"], []) }
        }()
        print("kill -9: an uninterrupted run of \(perRun) takes \(String(format: "%.2f", firstTakes)) s (first delivery), \(String(format: "%.2f", queueRunTakes)) s (queue pass)")
        for run in 0..<runs {
            let setup = try Setup()
            let tag = "k\(UUID().uuidString.prefix(8).lowercased())"
            let (input, markers) = Self.bulk(tag, count: perRun)
            let kind: String
            if run % 2 == 0 {
                kind = "first delivery"
                try Self.killed(setup, input, after: Double.random(in: 0...firstTakes))
                reach[kind, default: [:]][progress(tag), default: 0] += 1
                let again = try setup.deliver([], input)
                #expect(again.status == 0, "\(again.stderr)")
            } else {
                kind = "queue pass"
                // Queue everything: on.test's MX refuses connections for now.
                try "on.test smtp:[\(Peers.deadAddress)]:\(peers.smtpPort)\n".write(toFile: setup.dir.appendingPathComponent("transport").path,
                                                                                 atomically: true, encoding: .utf8)
                let queued = try setup.deliver([], input)
                #expect(queued.status == 0 && setup.queued.count == perRun, "\(queued.stderr)")
                try "".write(toFile: setup.dir.appendingPathComponent("transport").path, atomically: true, encoding: .utf8)
                try Self.killedQueuePass(setup, after: Double.random(in: 0...queueRunTakes))
                reach[kind, default: [:]][progress(tag), default: 0] += 1
                let rest = try setup.deliver(["--run-queue", "--force"], [])
                #expect(rest.status == 0, "\(rest.stderr)")
                #expect(setup.queued.isEmpty)
            }
            let counts = Self.counts(peers, markers)
            let lost = counts.filter { $0 == 0 }.count
            let duplicates = counts.reduce(0) { $0 + max(0, $1 - 1) }
            lostTotal += lost
            #expect(lost == 0, "run \(run) (\(kind)): \(lost) lost")
            #expect(duplicates <= 10, "run \(run) (\(kind)): \(duplicates) duplicates")
            histogram[kind, default: [:]][duplicates, default: 0] += 1
        }
        for (kind, h) in histogram.sorted(by: { $0.key < $1.key }) {
            let text = h.keys.sorted().map { "\($0) dup: \(h[$0]!) run\(h[$0]! == 1 ? "" : "s")" }.joined(separator: ", ")
            let when = (reach[kind] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
            print("kill -9, \(kind), \(h.values.reduce(0, +)) runs of \(perRun) messages: \(text); lost \(lostTotal) (\(when))")
        }
    }

    /// `sl-deliver --run-queue --force`, killed with SIGKILL after `after` seconds.
    static func killedQueuePass(_ setup: Setup, after: Double) throws {
        let p = Process()
        p.executableURL = Tools.binDirectory.appendingPathComponent("sl-deliver")
        p.arguments = ["--config", setup.config, "--timeout", "20", "--run-queue", "--force"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        usleep(UInt32(after * 1_000_000))
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }
}
