#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage

/// The loop every filter shares: read a stream (mboxrd or one bare message) from
/// stdin, transform each message, and write the results to stdout.
///
/// One message (a bare message, or `--single-message` as Postfix and procmail hand
/// it over) is all or nothing: its output is staged and reaches stdout only at
/// `commit()`, so a tool that fails writes nothing and the caller keeps the message.
/// An mboxrd stream is passed on message by message as each is done, so the stages
/// of a pipeline work at the same time and no stage holds the whole stream; routed
/// messages carry `X-SL-Length` so that the next stage can tell a message cut off
/// by a dying stage from a whole one. A stream that fails part way has passed on
/// what came before the failure; sl-deliver's delivery record makes feeding the
/// same input again safe.
///
/// With a reject file, a message that is malformed (a data error, exit 65) is set
/// aside there with its reason and the stream goes on; `commit()` then exits 65
/// after the rest has been written, saying how many were set aside.
public final class StreamFilter {
    public let tool: String
    public var input: Int32 = 0
    /// `.single` for --single-message (procmail, Postfix pipe with the F flag).
    public var framing: MessageStreamReader<FileDescriptorSource>.Framing = .automatic
    /// Write a bare message when the input was one bare message and the transform
    /// made exactly one message of it (the encryption tools used alone).
    public var bareOutputForBareInput = false
    /// Progress on stderr: on when stderr is a terminal, off with --quiet.
    public var showProgress = Diagnostics.stderrIsTerminal
    /// False for the first stage (sl-classify), which reads mail from outside: see
    /// MessageStreamReader.checksStreamLength.
    public var checksStreamLength = true
    /// Where malformed messages go (--reject-file); nil: the first one fails the run.
    public var rejects: RejectFile?
    /// Runs when the next read would wait for input, and every quarter second
    /// while it waits (after this stage's output so far was passed on): sl-deliver
    /// delivers what it has taken, and stops there when asked to.
    public var whileWaiting: (() throws -> Void)?
    /// Runs before output for a message is written (sl-classify commits its audit
    /// records there: a record is never missing for a message that went on).
    public var beforeOutput: (() throws -> Void)?
    public private(set) var rejected = 0

    private var staged: StagedOutput?
    private var streamed: FileDescriptorSink?
    private var writer: MboxWriter?
    private var progress: ProgressMeter?

    public init(tool: String) throws {
        self.tool = tool
    }

    public convenience init(tool: String, options: StreamOptions) throws {
        try self.init(tool: tool)
        if options.singleMessage { framing = .single }
        if options.quiet { showProgress = false }
        if let path = options.rejectFile { rejects = RejectFile(path: path, tool: tool) }
    }

    /// Runs `transform` on every message and writes what it returns; returns the
    /// number of messages read.
    @discardableResult
    public func process(_ transform: (Message) throws -> [Message]) throws -> Int {
        try passingOnWhatIsDone { try processEach(transform) }
    }

    /// Whole messages written before a failure still go on (a stream passes on
    /// what is done), even those buffered while more input was ready.
    private func passingOnWhatIsDone(_ body: () throws -> Int) throws -> Int {
        do {
            return try body()
        } catch {
            try? streamed?.flush()
            throw error
        }
    }

    private func processEach(_ transform: (Message) throws -> [Message]) throws -> Int {
        var reader = MessageStreamReader(source(), framing: framing)
        reader.checksStreamLength = checksStreamLength
        var count = 0
        start()
        while let message = try nextMessage(&reader) {
            count += 1
            do {
                try write(try transform(message), reader: reader)
            } catch where setAside(error, message) {
            }
            progress?.update(count)
        }
        progress?.finish(count, setAside: rejected)
        return count
    }

    /// Like `process`, but transforms up to `workers` messages at once (each worker
    /// index has its own state, such as a GPGME context) and writes the results in
    /// input order. For tools whose per-message work runs in another process (gpg),
    /// so a stream uses every core. On the first error in input order that is not
    /// set aside, that error is thrown.
    @discardableResult
    public func process(workers: Int, _ transform: @escaping @Sendable (Message, Int) throws -> [Message]) throws -> Int {
        guard workers > 1 else { return try process { try transform($0, 0) } }
        return try passingOnWhatIsDone { try processBatches(workers: workers, transform) }
    }

    private func processBatches(workers: Int, _ transform: @escaping @Sendable (Message, Int) throws -> [Message]) throws -> Int {
        var reader = MessageStreamReader(source(), framing: framing)
        reader.checksStreamLength = checksStreamLength
        var count = 0
        let batchSize = workers * 4
        start()
        while true {
            var batch: [Message] = []
            while batch.count < batchSize, let m = try nextMessage(&reader) { batch.append(m) }
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
                do {
                    try write(try results.get(i).get(), reader: reader)
                } catch where setAside(error, batch[i]) {
                }
            }
            count += batch.count
            progress?.update(count)
        }
        progress?.finish(count, setAside: rejected)
        return count
    }

    /// Writes the staged output of a single message to stdout, then reports the
    /// messages set aside (exit 65) if there were any.
    public func commit() throws {
        try streamed?.flush()
        try staged?.commit(to: 1)
        try reportRejections()
    }

    /// For tools that write no stream (sl-deliver): the set-aside messages, as an error.
    public func reportRejections() throws {
        if rejected > 0, let rejects { throw MessagesSetAside(count: rejected, path: rejects.path) }
    }

    private func start() {
        if showProgress { progress = ProgressMeter(tool: tool, input: input) }
    }

    /// The next message, setting aside those the reader cannot take.
    private func nextMessage(_ reader: inout MessageStreamReader<FileDescriptorSource>) throws -> Message? {
        while true {
            do {
                return try reader.next()
            } catch let r as RejectedMessage where rejects != nil {
                try rejects?.add(fromLine: r.fromLine, header: r.header, body: r.body, reason: r.reason)
                rejected += 1
            }
        }
    }

    /// True when `error` is about this message alone (exit 65) and a reject file
    /// took the message; false to let the error end the run.
    private func setAside(_ error: any Error, _ message: Message) -> Bool {
        guard let rejects, Sysexit(for: error) == .dataError else { return false }
        do {
            try rejects.add(fromLine: message.fromLine, header: message.header.bytes, body: message.body, reason: "\(error)")
        } catch {
            Diagnostics.warn(tool, "\(error)")
            return false
        }
        rejected += 1
        return true
    }

    private func write(_ outputs: [Message], reader: MessageStreamReader<FileDescriptorSource>) throws {
        let writer = try self.writer ?? makeWriter(streaming: reader.inputIsMbox)
        try beforeOutput?()
        if staged != nil && bareOutputForBareInput && !reader.inputIsMbox && outputs.count == 1 {
            try writer.writeBare(outputs[0])
            return
        }
        // Streamed output is written when the buffer fills and whenever the next
        // read would wait (see `source`): never held while this stage waits for
        // input, but one write(2) and one wake-up of the next stage for a run of
        // messages that were ready, not one per message.
        for out in outputs { try writer.write(out, declareLength: streamed != nil) }
    }

    /// The input, passing on what was written before any read that would wait.
    /// (A failed write shows again at the next flush or at `commit()`.)
    private func source() -> FileDescriptorSource {
        FileDescriptorSource(fd: input, whileWaiting: { [weak self] in
            try? self?.streamed?.flush()
            try self?.whileWaiting?()
        })
    }

    private func makeWriter(streaming: Bool) throws -> MboxWriter {
        let sink: FileDescriptorSink
        if streaming {
            sink = FileDescriptorSink(fd: 1)
            streamed = sink
        } else {
            let s = try StagedOutput()
            staged = s
            sink = s.sink
        }
        let w = MboxWriter(sink: sink)
        writer = w
        return w
    }
}

/// The end of a run that set messages aside: exit 65 once the rest is through.
public struct MessagesSetAside: SysexitReporting, CustomStringConvertible {
    public let count: Int
    public let path: String
    public var sysexit: Sysexit { .dataError }
    public var description: String {
        "\(count) malformed message\(count == 1 ? "" : "s") set aside in \(path) (each with an X-SL-Rejected field saying why); the rest of the stream was processed"
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
