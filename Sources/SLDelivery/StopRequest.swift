import Foundation

/// SIGTERM and SIGINT, taken as a request to stop rather than an end: the
/// transactions in flight finish and are recorded, nothing new starts, and what
/// was not attempted is queued durably, so the input is taken whole and a later
/// queue run sends the rest. Read from the delivering threads.
public enum StopRequest {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var flag = false
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    public static var requested: Bool { lock.withLock { flag } }

    /// Handles the signals on a dispatch queue (not in signal context).
    public static func install() {
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { lock.withLock { flag = true } }
            source.resume()
            lock.withLock { sources.append(source) }
        }
    }
}
