import Foundation
import Testing

/// Golden tests in the Postfix manner: Golden/NAME.in is piped through
/// `sl-classify --config examples/sl.conf --explain` with the arguments in
/// Golden/NAME.args, and the output must equal Golden/NAME.ref exactly. To accept a
/// deliberate change, regenerate the .ref with SL_GOLDEN_UPDATE=1 and review the diff.
@Suite struct GoldenTests {
    static let directory = Tools.repository.appendingPathComponent("Tests/ToolTests/Golden")

    static var cases: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasSuffix(".in") }.map { String($0.dropLast(3)) }.sorted()
    }

    @Test func thereAreGoldenCases() { #expect(Self.cases.count >= 3) }

    @Test(arguments: GoldenTests.cases)
    func explainMatchesReference(_ name: String) throws {
        let dir = Self.directory
        let input = try Data(contentsOf: dir.appendingPathComponent(name + ".in"))
        let argsText = try String(contentsOf: dir.appendingPathComponent(name + ".args"), encoding: .utf8)
        let args = argsText.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        // The example policy reads a TLS cache next to it; golden runs use static verdicts
        // only, so a demo run's cache must not change the result: copy the policy.
        let scratch = try Tools.scratch()
        for item in ["sl.conf", "escrow-accounts", "books"] {
            try FileManager.default.copyItem(at: Tools.examples.appendingPathComponent(item), to: scratch.appendingPathComponent(item))
        }
        let conf = scratch.appendingPathComponent("sl.conf").path
        let run = try Tools.run("sl-classify", ["--config", conf, "--explain"] + args, stdin: Array(input))
        #expect(run.status == 0, "\(run.stderr)")
        let refURL = dir.appendingPathComponent(name + ".ref")
        if ProcessInfo.processInfo.environment["SL_GOLDEN_UPDATE"] == "1" {
            try Data(run.stdout).write(to: refURL)
        }
        let ref = try String(contentsOf: refURL, encoding: .utf8)
        #expect(run.stdoutText == ref)
    }
}
