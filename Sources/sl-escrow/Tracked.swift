import ArgumentParser
import SLCommand
import SLEscrow
import SLMessage

extension SLEscrow {
    struct Tracked: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The copies sent by TLS, PGP or S/MIME with open tracking, and when their image was fetched.")
        @OptionGroup var options: StoreOptions
        @Flag(help: "One JSON object per line.") var json = false
        func run() throws { try options.tool.tracked(json: json) }
    }
}

extension EscrowTool {
    /// The open-tracking table, newest first, as `list` shows escrow messages.
    public func tracked(json: Bool) throws {
        try Self.report(try context().0.store.trackedCopies(), json: json,
                        heading: "CREATED (UTC)     METHOD  FIRST OPEN        LAST OPEN         RECEIPT  MESSAGE-ID / RECIPIENTS") { c in
            let first = c.firstOpen.map(Self.short) ?? "not opened      "
            let last = c.lastOpen.map(Self.short) ?? "-               "
            return "\(Self.short(c.created))  \(c.method.padding(toLength: 6, withPad: " ", startingAt: 0))  \(first)  \(last)  "
                + "\(c.receiptSent ? "sent   " : "-      ")  \(c.messageID ?? "-") \(c.recipients.joined(separator: ", "))"
        }
    }

    /// A listing on stdout: one JSON object per line, or a heading and a line each.
    static func report<Row: Encodable>(_ rows: [Row], json: Bool, heading: String, line: (Row) -> String) throws {
        var out = json ? "" : heading + "\n"
        for row in rows { out += (json ? try Self.json(row) : line(row)) + "\n" }
        try FileDescriptorIO.writeAll(1, Array(out.utf8))
    }
}
