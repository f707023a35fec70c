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
        var started: [pthread_t] = []
        for state in states {
            let work = Work { while let i = pool.claim() { pool.store(i, job(state, i), finished) } }
            if let thread = work.start(stackSize: 1 << 20) { started.append(thread) }
        }
        // Joined, not just waited for: map returns once every worker has exited, its
        // thread-exit destructors run (OpenSSL frees each thread's random generators
        // there). A tool that exits right after map (sl-tls-probe, sl-deliver) would
        // otherwise race its own workers' teardown, which LeakSanitizer saw as leaks.
        for thread in started { pthread_join(thread, nil) }
        // No thread at all (the process is at its limit): the jobs run here.
        if started.isEmpty, let state = states.first {
            while let i = pool.claim() { pool.store(i, job(state, i), finished) }
        }
        return pool.outputs()
    }

    /// One worker's loop, handed to pthread_create: plain POSIX threads because
    /// Foundation's Thread cannot be joined.
    private final class Work {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }

        /// The started thread, or nil when it could not be made.
        func start(stackSize: Int) -> pthread_t? {
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            defer { pthread_attr_destroy(&attributes) }
            pthread_attr_setstacksize(&attributes, stackSize)
            let retained = Unmanaged.passRetained(self)
            var thread = pthread_t()
            let rc = pthread_create(&thread, &attributes, { raw in
                Unmanaged<Work>.fromOpaque(raw!).takeRetainedValue().body()
                return nil
            }, retained.toOpaque())
            guard rc == 0 else { retained.release(); return nil }
            return thread
        }
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
}
