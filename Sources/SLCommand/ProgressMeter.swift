#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage

/// Progress of a long stream on stderr (a terminal): messages done, the rate, and
/// when the input is a regular file (its size known) the share read and an ETA.
/// One line that rewrites itself, at most four times a second, and a final line.
final class ProgressMeter {
    let tool: String
    let input: Int32
    let started = Date()
    private var lastShown = Date.distantPast
    private var shown = false
    /// The input's size when it is a regular file (`sl-send < bulk.mbox`).
    private let total: Int64?

    init(tool: String, input: Int32) {
        self.tool = tool
        self.input = input
        var info = stat()
        total = fstat(input, &info) == 0 && info.st_mode & S_IFMT == S_IFREG && info.st_size > 0 ? Int64(info.st_size) : nil
    }

    func update(_ count: Int) {
        let now = Date()
        guard now.timeIntervalSince(lastShown) >= 0.25 else { return }
        lastShown = now
        show(Self.line(count: count, elapsed: now.timeIntervalSince(started), done: readOffset(), total: total), final: false)
    }

    func finish(_ count: Int, setAside: Int) {
        // A short run that never showed a line needs no summary either.
        guard shown else { return }
        let aside = setAside > 0 ? ", \(setAside) set aside" : ""
        show(Self.line(count: count, elapsed: Date().timeIntervalSince(started), done: nil, total: nil) + aside + ", done", final: true)
    }

    private func readOffset() -> Int64? {
        guard total != nil else { return nil }
        let at = lseek(input, 0, SEEK_CUR)
        return at >= 0 ? Int64(at) : nil
    }

    private func show(_ text: String, final: Bool) {
        shown = true
        // \r and clear to the end of the line: the line rewrites itself.
        try? FileDescriptorIO.writeAll(2, Array("\r\(tool): \(text)\u{1B}[K\(final ? "\n" : "")".utf8))
    }

    /// `1200 messages, 340/s, 48%, about 0:04 left`.
    static func line(count: Int, elapsed: Double, done: Int64?, total: Int64?) -> String {
        var s = "\(count) message\(count == 1 ? "" : "s")"
        if elapsed > 0 { s += ", \(Int((Double(count) / elapsed).rounded()))/s" }
        if let done, let total, total > 0, done > 0 {
            let share = min(1, Double(done) / Double(total))
            s += ", \(Int(share * 100))%"
            if share > 0.01 && share < 1 {
                s += ", about \(duration(elapsed / share - elapsed)) left"
            }
        }
        return s
    }

    static func duration(_ seconds: Double) -> String {
        let t = max(0, Int(seconds.rounded()))
        let (h, m, sec) = (t / 3600, t / 60 % 60, t % 60)
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return h > 0 ? "\(h):\(two(m)):\(two(sec))" : "\(m):\(two(sec))"
    }
}
