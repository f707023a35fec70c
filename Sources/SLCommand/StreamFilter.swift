#if canImport(Glibc)
import Glibc
#endif
import SLMessage

/// The loop every filter shares: read a stream (mboxrd or one bare message) from
/// stdin, transform each message, stage the output, and write it out only when every
/// message succeeded (`commit`). One process handles the whole stream.
public final class StreamFilter {
    public let tool: String
    public var input: Int32 = 0
    /// `.single` for --single-message (procmail, Postfix pipe with the F flag).
    public var framing: MessageStreamReader<FileDescriptorSource>.Framing = .automatic
    /// Write a bare message when the input was one bare message and the transform
    /// made exactly one message of it (the encryption tools used alone).
    public var bareOutputForBareInput = false
    /// Print a running count on stderr (only when stderr is a terminal).
    public var showProgress = Diagnostics.stderrIsTerminal
    private let staged: StagedOutput

    public init(tool: String) throws {
        self.tool = tool
        staged = try StagedOutput()
    }

    /// Runs `transform` on every message and stages what it returns; returns the
    /// number of messages read. Nothing reaches stdout until `commit()`.
    @discardableResult
    public func process(_ transform: (Message) throws -> [Message]) throws -> Int {
        var reader = MessageStreamReader(FileDescriptorSource(fd: input), framing: framing)
        let writer = MboxWriter(sink: staged.sink)
        var count = 0
        while let message = try reader.next() {
            let outputs = try transform(message)
            if bareOutputForBareInput && !reader.inputIsMbox && outputs.count == 1 {
                try writer.writeBare(outputs[0])
            } else {
                for out in outputs { try writer.write(out) }
            }
            count += 1
            if showProgress && count % 1000 == 0 { Diagnostics.progress(tool, "\(count) messages") }
        }
        if showProgress && count >= 1000 { Diagnostics.progress(tool, "\(count) messages, done", final: true) }
        return count
    }

    /// Writes the staged stream to stdout.
    public func commit() throws { try staged.commit(to: 1) }
}

extension Diagnostics {
    /// A progress line that rewrites itself on a terminal.
    static func progress(_ tool: String, _ text: String, final: Bool = false) {
        try? FileDescriptorIO.writeAll(2, Array("\r\(tool): \(text)\(final ? "\n" : "")".utf8))
    }
}
