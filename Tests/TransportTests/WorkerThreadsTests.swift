import Foundation
import Synchronization
import Testing
@testable import SLTransport

/// Counts the worker threads whose thread-exit destructors have run: a thread-specific
/// value set on each worker is destroyed only as that thread ends.
private let exitedWorkers = Atomic<Int>(0)
private let workerExitKey: pthread_key_t = {
    var key = pthread_key_t()
    precondition(pthread_key_create(&key) { _ in exitedWorkers.add(1, ordering: .sequentiallyConsistent) } == 0)
    return key
}()

@Suite(.serialized) struct WorkerThreadsTests {
    @Test func outputsComeInIndexOrderWithEachThreadsOwnState() throws {
        let outputs = try WorkerThreads.map(count: 200, threads: 4, state: { NSObject() }, job: { state, i in
            (i * i, ObjectIdentifier(state))
        })
        #expect(outputs.map(\.0) == (0..<200).map { $0 * $0 })
        #expect(Set(outputs.map(\.1)).count <= 4)
    }

    /// sl-tls-probe and sl-deliver exit right after map. Map used to return when its
    /// workers had signalled, while they were still ending: their thread-exit
    /// destructors (OpenSSL frees each thread's random generators there) raced the
    /// process's exit, and LeakSanitizer reported what they had not yet freed.
    @Test(arguments: [1, 3, 8])
    func mapReturnsOnlyAfterItsWorkersHaveEnded(_ threads: Int) throws {
        for _ in 0..<20 {
            let before = exitedWorkers.load(ordering: .sequentiallyConsistent)
            let started = ExitCounter()
            _ = try WorkerThreads.map(count: threads, threads: threads, state: { () }, job: { _, _ in
                if pthread_getspecific(workerExitKey) == nil {
                    pthread_setspecific(workerExitKey, UnsafeRawPointer(bitPattern: 1))
                    started.value.add(1, ordering: .sequentiallyConsistent)
                }
                usleep(1000)
            })
            let ran = started.value.load(ordering: .sequentiallyConsistent)
            #expect(ran >= 1)
            #expect(exitedWorkers.load(ordering: .sequentiallyConsistent) - before == ran)
        }
    }
}

private final class ExitCounter: Sendable {
    let value = Atomic<Int>(0)
}
