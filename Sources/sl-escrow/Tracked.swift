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
        let copies = try context().0.store.trackedCopies()
        var out = ""
        if json {
            for c in copies { out += try Self.json(c) + "\n" }
        } else {
            out += "CREATED (UTC)     METHOD  FIRST OPEN        LAST OPEN         RECEIPT  MESSAGE-ID / RECIPIENTS\n"
            for c in copies {
                let first = c.firstOpen.map(Self.short) ?? "not opened      "
                let last = c.lastOpen.map(Self.short) ?? "-               "
                out += "\(Self.short(c.created))  \(c.method.padding(toLength: 6, withPad: " ", startingAt: 0))  \(first)  \(last)  "
                out += "\(c.receiptSent ? "sent   " : "-      ")  \(c.messageID ?? "-") \(c.recipients.joined(separator: ", "))\n"
            }
        }
        try FileDescriptorIO.writeAll(1, Array(out.utf8))
    }
}
