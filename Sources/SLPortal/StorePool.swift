import Foundation
import SLEscrow
import SLMessage

/// Store work off the event loops, at most one job per core: each slot owns its own
/// store connection and thread, so Argon2id derivations (tens of MiB each) never run
/// more than `slots` at once. A request that finds every slot busy waits up to
/// `patience`, then is turned away (503 with Retry-After) rather than queued without
/// end.
final class StorePool: @unchecked Sendable {
    /// Never leaves the portal (it becomes a 503 page); a temporary failure if it did.
    struct Busy: Error, SysexitReporting { var sysexit: Sysexit { .tempFail } }

    final class Slot: @unchecked Sendable {
        let store: EscrowStore
        let queue: DispatchQueue
        init(store: EscrowStore, number: Int) {
            self.store = store
            queue = DispatchQueue(label: "sl-portal.store.\(number)")
        }
    }

    private let lock = NSLock()
    private var free: [Slot]
    private var waiters: [(ticket: UInt64, continuation: CheckedContinuation<Slot?, Never>)] = []
    private var nextTicket: UInt64 = 0
    let patience: Duration
    let count: Int

    init(stores: [EscrowStore], patience: Duration) {
        free = stores.enumerated().map { Slot(store: $1, number: $0) }
        count = stores.count
        self.patience = patience
    }

    /// Runs `body` with a store on a slot's own thread.
    func run<T: Sendable>(_ body: @escaping @Sendable (EscrowStore) throws -> T) async throws -> T {
        guard let slot = await acquire() else { throw Busy() }
        defer { release(slot) }
        return try await withCheckedThrowingContinuation { c in
            slot.queue.async { c.resume(with: Result { try body(slot.store) }) }
        }
    }

    private func acquire() async -> Slot? {
        let ticket: UInt64 = lock.withLock { nextTicket += 1; return nextTicket }
        return await withCheckedContinuation { (c: CheckedContinuation<Slot?, Never>) in
            let slot: Slot?? = lock.withLock {
                if let s = free.popLast() { return .some(s) }
                waiters.append((ticket, c))
                return .none
            }
            if let slot { c.resume(returning: slot); return }
            let patience = self.patience
            Task { [weak self] in
                try? await Task.sleep(for: patience)
                self?.giveUp(ticket)
            }
        }
    }

    private func giveUp(_ ticket: UInt64) {
        let waiter: CheckedContinuation<Slot?, Never>? = lock.withLock {
            guard let i = waiters.firstIndex(where: { $0.ticket == ticket }) else { return nil }
            return waiters.remove(at: i).continuation
        }
        waiter?.resume(returning: nil)
    }

    private func release(_ slot: Slot) {
        let waiter: CheckedContinuation<Slot?, Never>? = lock.withLock {
            if waiters.isEmpty { free.append(slot); return nil }
            return waiters.removeFirst().continuation
        }
        waiter?.resume(returning: slot)
    }
}
