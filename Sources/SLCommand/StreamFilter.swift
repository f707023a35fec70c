#if canImport(Glibc)
import Glibc
#endif
import Foundation
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

    /// Like `process`, but transforms up to `workers` messages at once (each worker
    /// index has its own state, such as a GPGME context) and writes the results in
    /// input order. For tools whose per-message work runs in another process (gpg),
    /// so a stream uses every core. On the first error in input order, that error is
    /// thrown and nothing is committed.
    @discardableResult
    public func process(workers: Int, _ transform: @escaping @Sendable (Message, Int) throws -> [Message]) throws -> Int {
        guard workers > 1 else { return try process { try transform($0, 0) } }
        var reader = MessageStreamReader(FileDescriptorSource(fd: input), framing: framing)
        let writer = MboxWriter(sink: staged.sink)
        var count = 0
        let batchSize = workers * 4
        while true {
            var batch: [Message] = []
            while batch.count < batchSize, let m = try reader.next() { batch.append(m) }
            if batch.isEmpty { break }
            let results = ResultSlots(count: batch.count)
            let next = ResultSlots.Counter()
            let input = batch
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                while let i = next.take(below: input.count) {
                    results.set(i, Result { try transform(input[i], worker) })
                }
            }
            for i in 0..<batch.count {
                let outputs = try results.get(i).get()
                if bareOutputForBareInput && !reader.inputIsMbox && outputs.count == 1 {
                    try writer.writeBare(outputs[0])
                } else {
                    for out in outputs { try writer.write(out) }
                }
            }
            count += batch.count
            if showProgress && count % 1000 < batch.count { Diagnostics.progress(tool, "\(count) messages") }
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

/// Results of a parallel batch, filled by worker threads and read in order.
final class ResultSlots: @unchecked Sendable {
    private var slots: [Result<[Message], any Error>?]
    private let lock = NSLock()
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<[Message], any Error>) { lock.lock(); slots[i] = r; lock.unlock() }
    func get(_ i: Int) -> Result<[Message], any Error> {
        lock.lock(); defer { lock.unlock() }
        return slots[i] ?? .failure(MessageError.io("internal error: message \(i) was not processed"))
    }

    /// Hands out indexes 0, 1, 2... to workers.
    final class Counter: @unchecked Sendable {
        private var next = 0
        private let lock = NSLock()
        func take(below limit: Int) -> Int? {
            lock.lock(); defer { lock.unlock() }
            guard next < limit else { return nil }
            next += 1
            return next - 1
        }
    }
}
