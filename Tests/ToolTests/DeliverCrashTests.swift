import Foundation
import Testing
import SLMessage
import SLTestPeers

/// kill -9 at random moments: every message is delivered at least once in the end,
/// given what a caller (Postfix pipe(8), procmail) does — feed the message again
/// when sl-deliver did not exit 0 — and a later --run-queue.
@Suite struct DeliverCrashTests {
    @Test func killedAtRandomPointsNothingIsLost() throws {
        let peers = try Peers.shared.get()
        let setup = try DeliverToolTests.Setup()
        let binary = Tools.binDirectory.appendingPathComponent("sl-deliver").path
        var markers: [String] = []
        var killed = 0
        for round in 0..<16 {
            let batch = (0..<3).map { _ in "crash-\(UUID().uuidString)" }
            markers += batch
            var stream: Bytes = []
            for m in batch {
                stream += bytes("From alice@clinic.test Mon Nov 30 09:00:00 2026\n")
                stream += DeliverToolTests.routed(to: ["bob@on.test", "carol@off.test"], tls: "opportunistic", marker: m) + bytes("\n")
            }
            let input = setup.dir.appendingPathComponent("in-\(round)")
            try Data(stream).write(to: input)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = ["--config", setup.config]
            p.standardInput = try FileHandle(forReadingFrom: input)
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            usleep(UInt32.random(in: 0..<120_000))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            if p.terminationReason == .uncaughtSignal {
                killed += 1
                // The caller still has the message: it tries again.
                let again = try Tools.run("sl-deliver", ["--config", setup.config], stdin: stream)
                #expect(again.status == 0, "\(again.stderr)")
            } else {
                #expect(p.terminationStatus == 0)
            }
        }
        let rest = try Tools.run("sl-deliver", ["--config", setup.config, "--run-queue", "--force"], stdin: [])
        #expect(rest.status == 0, "\(rest.stderr)")
        #expect(setup.queued.isEmpty)
        #expect(killed > 0)
        for m in markers {
            #expect(!peers.delivered(to: Peers.server("on"), containing: m).isEmpty, "lost for bob: \(m)")
            #expect(!peers.delivered(to: Peers.server("off"), containing: m).isEmpty, "lost for carol: \(m)")
        }
    }
}
