import Foundation
import Testing
import SLEscrow
import SLMessage

/// Errors gathered from several threads.
private final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [String] = []
    func add(_ e: String) { lock.lock(); errors.append(e); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return errors }
}

@Suite struct EscrowConcurrencyTests {
    /// Two packers at once, each with its own store instance (own connection), as two
    /// filter processes would be: every record lands whole.
    @Test(arguments: Backend.allCases) func twoPackersAtOnce(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        _ = try EscrowStore(location: dir)
        let key = try answerKey("together")
        let errors = ErrorBox()
        let perThread = 50
        let threads = (0..<2).map { t in
            Thread {
                do {
                    let store = try EscrowStore(location: dir)
                    for n in 0..<perThread {
                        let m = try Message(bytes: Array("Subject: \(t)-\(n)\n\nbody \(t) \(n)\n".utf8))
                        _ = try store.pack(m, sender: "p\(t)@example.org",
                                           recipients: [EscrowRecipient(address: "r@example.org", verification: .question("q", key))],
                                           created: created.addingTimeInterval(Double(n)), expires: expires)
                    }
                } catch {
                    errors.add("\(error)")
                }
            }
        }
        for thread in threads { thread.start() }
        while threads.contains(where: { !$0.isFinished }) { usleep(10_000) }
        #expect(errors.all == [])
        let store = try EscrowStore(location: dir)
        #expect(try store.verify() == [])
        let all = try store.list()
        #expect(all.count == 2 * perThread)
        #expect(Set(all.map(\.id)).count == 2 * perThread)
        // Newest first.
        #expect(zip(all, all.dropFirst()).allSatisfy { $0.created >= $1.created })
        #expect(try RawStore(backend, dir).contentIDs() == Set(all.map(\.id)))
        if backend == .sqlite {
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/content").filter { $0.hasPrefix(".tmp-") }.isEmpty)
        }
    }
}
