import Foundation

/// Blocking network work in parallel: the probe and the SMTP sender wait on sockets
/// with poll(2) deadlines, so they run on plain threads, not on Swift concurrency's
/// few cooperative ones.
public enum WorkerThreads {
    /// Runs `job` for each index of 0..<count on up to `threads` threads and returns
    /// the outputs in index order. Each thread gets a `State` of its own (a DNS
    /// resolver: libresolv state must not be shared); they are all made before any
    /// thread starts, so a failure is reported once. `finished` is told, one call at
    /// a time, how many jobs are done and the output of the latest.
    public static func map<State, Output>(count: Int, threads: Int, state makeState: () throws -> State,
                                          job: @escaping (State, Int) -> Output,
                                          finished: ((Int, Output) -> Void)? = nil) throws -> [Output] {
        guard count > 0 else { return [] }
        let pool = Pool<Output>(count: count)
        let workers = max(1, min(threads, count))
        let states = try (0..<workers).map { _ in try makeState() }
        let group = DispatchGroup()
        for state in states {
            let context = Unchecked((state, job, finished))
            group.enter()
            let thread = Thread {
                let (state, job, finished) = context.value
                while let i = pool.claim() { pool.store(i, job(state, i), finished) }
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
        return pool.outputs()
    }

    /// Hands out indexes and collects outputs under one lock.
    final class Pool<Output>: @unchecked Sendable {
        private let lock = NSLock()
        private var next = 0
        private var done = 0
        private var slots: [Output?]

        init(count: Int) { slots = Array(repeating: nil, count: count) }

        func claim() -> Int? {
            lock.lock(); defer { lock.unlock() }
            guard next < slots.count else { return nil }
            next += 1
            return next - 1
        }

        func store(_ i: Int, _ output: Output, _ finished: ((Int, Output) -> Void)?) {
            lock.lock(); defer { lock.unlock() }
            slots[i] = output
            done += 1
            finished?(done, output)
        }

        func outputs() -> [Output] {
            lock.lock(); defer { lock.unlock() }
            return slots.map { $0! }
        }
    }

    struct Unchecked<T>: @unchecked Sendable {
        let value: T
        init(_ v: T) { value = v }
    }
}
