import Foundation
import SLMessage

/// syncfs(2): Glibc's module map hides it (it needs _GNU_SOURCE). One call
/// flushes a whole batch of staged messages instead of one fsync each.
@_silgen_name("syncfs") private func syncfs(_ fd: Int32) -> Int32

/// What the queue knows about a message besides its bytes.
public struct QueueState: Codable, Sendable, Equatable {
    /// Seconds since the epoch when the message entered the queue.
    public var created: Double
    public var attempts: Int
    /// Not before this time (seconds since the epoch).
    public var nextAttempt: Double
    public var lastReason: String?
    /// Recipients whose TLS-only delivery found no verified TLS: they wait for a new
    /// decision (`reroute_command`), never for plaintext.
    public var reroute: [String]
    /// Held by the admin (`sl-deliver --hold`): no run attempts it until released.
    public var held: Bool?
    /// The sender was warned of the delay (once per message).
    public var delayWarned: Bool?

    public init(created: Double) {
        self.created = created; attempts = 0; nextAttempt = created; lastReason = nil; reroute = []
    }
}

/// One queued message: `ID.eml` holds the message with its X-SL-* routing (the
/// recipients still to deliver), `ID.state` the attempts once there were some. The
/// ID starts with the time the message was queued.
public struct QueueItem: Sendable {
    public let id: String
    public var state: QueueState
    public init(id: String, state: QueueState) { self.id = id; self.state = state }
}

/// The delivery queue: a directory where every message lives from the moment
/// sl-deliver accepts it until each recipient is delivered or bounced.
///
/// Durability: a message is written to a temporary name, fsync'd, renamed into
/// place and the directory fsync'd before sl-deliver reports success, so a crash
/// (kill -9, power loss) at any point leaves either the caller's copy (we had not
/// yet said yes) or ours. Delivery comes after; a crash between the server's 250
/// and our removal means one duplicate delivery, never a loss (at-least-once).
/// Each item is locked (flock) while a process works on it, so `--run-queue` from
/// cron and a running pipeline never send the same item at once.
public final class DeliveryQueue: @unchecked Sendable {
    public let directory: String

    public init(directory: String) throws {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw MessageError.io("cannot create the queue directory \(directory): \(error.localizedDescription)")
        }
    }

    func path(_ id: String, _ ext: String) -> String { "\(directory)/\(id).\(ext)" }

    /// A new identifier: time-ordered, unique across processes.
    static func newID() -> String {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return String(format: "%010ld%06ld-%012llx", t.tv_sec, t.tv_nsec / 1000, UInt64.random(in: 0..<(1 << 48)))
    }

    /// Stores a message durably and returns its item.
    public func add(_ message: Message, now: Double) throws -> QueueItem {
        let staged = try stage(message)
        return try commit([staged], now: now)[0]
    }

    /// A message written under a temporary name, not yet part of the queue.
    public struct Staged: Sendable {
        let temporary: String
        let id: String
        /// Its state file under a temporary name, when it has attempts behind it.
        let stateTemporary: String?
    }

    /// Writes a message under a temporary name (no sync yet): a stream is staged
    /// message by message, so memory stays flat, and committed all at once. A
    /// message that was already tried comes with its state.
    public func stage(_ message: Message, state: QueueState? = nil) throws -> Staged {
        let id = Self.newID()
        let temporary = "\(directory)/.tmp-\(getpid())-\(id)"
        try writeMessage(message, to: temporary)
        guard let state else { return Staged(temporary: temporary, id: id, stateTemporary: nil) }
        let stateTemporary = temporary + ".state"
        do {
            try writeFile(stateTemporary, try JSONEncoder().encode(state))
        } catch {
            unlink(temporary)
            throw error
        }
        return Staged(temporary: temporary, id: id, stateTemporary: stateTemporary)
    }

    /// Makes staged messages part of the queue, durably: one syncfs(2) for all
    /// their data, the renames (the state first: a state without its message is
    /// ignored), one fsync(2) of the directory.
    public func commit(_ staged: [Staged], now: Double) throws -> [QueueItem] {
        guard !staged.isEmpty else { return [] }
        let d = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard d >= 0 else { throw MessageError.io("cannot open the queue directory \(directory)") }
        defer { close(d) }
        guard syncfs(d) == 0 else { throw MessageError.io("cannot sync the queue: \(String(cString: strerror(errno)))") }
        for s in staged {
            if let t = s.stateTemporary, rename(t, path(s.id, "state")) != 0 {
                throw MessageError.io("cannot commit \(s.id) to the queue: \(String(cString: strerror(errno)))")
            }
            guard rename(s.temporary, path(s.id, "eml")) == 0 else {
                throw MessageError.io("cannot commit \(s.id) to the queue: \(String(cString: strerror(errno)))")
            }
        }
        guard fsync(d) == 0 else { throw MessageError.io("cannot sync the queue directory: \(String(cString: strerror(errno)))") }
        return staged.map { QueueItem(id: $0.id, state: QueueState(created: now)) }
    }

    /// Removes staged messages that will not be committed.
    public func discard(_ staged: [Staged]) {
        for s in staged {
            unlink(s.temporary)
            if let t = s.stateTemporary { unlink(t) }
        }
    }

    /// Replaces the message of an item (fewer recipients after an attempt).
    public func replace(_ id: String, with message: Message) throws {
        try writeMessageDurably(message, to: path(id, "eml"))
    }

    public func save(_ item: QueueItem) throws {
        try writeDurably(path(item.id, "state"), try JSONEncoder().encode(item.state))
    }

    /// The folder items go that cannot be worked (a message that no longer parses,
    /// routing fields gone): out of every queue run, kept for the admin.
    public var asideDirectory: String { directory + "/aside" }

    /// Moves an item that cannot be worked into `asideDirectory` with a note of
    /// why (ID.reason), so no run skips it for ever or trips over it again. The
    /// caller holds its lock.
    public func setAside(_ id: String, reason: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: asideDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw MessageError.io("cannot make \(asideDirectory): \(error.localizedDescription)")
        }
        try writeDurably(asideDirectory + "/\(id).reason", Data((reason + "\n").utf8))
        if access(path(id, "state"), F_OK) == 0 { rename(path(id, "state"), asideDirectory + "/\(id).state") }
        guard rename(path(id, "eml"), asideDirectory + "/\(id).eml") == 0 else {
            throw MessageError.io("cannot move \(id) aside: \(String(cString: strerror(errno)))")
        }
    }

    /// Removes an item once nothing is left to do for it. The message goes first:
    /// a state file without a message is ignored and cleaned up later. No sync: a
    /// removal lost in a crash means one more delivery, never a lost message.
    public func remove(_ id: String) {
        unlink(path(id, "eml"))
        unlink(path(id, "state"))
    }

    /// The queued message, read as a stream: a large body goes to a spool file,
    /// not into memory.
    public func message(_ id: String) throws -> Message {
        let fd = open(path(id, "eml"), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw MessageError.io("queue item \(id) has no message file") }
        defer { close(fd) }
        return try message(id, from: fd)
    }

    /// The message through a descriptor already open on it (the lock's).
    public func message(_ id: String, from fd: Int32) throws -> Message {
        guard lseek(fd, 0, SEEK_SET) == 0 else { throw MessageError.io("cannot read queue item \(id)") }
        var reader = MessageStreamReader(FileDescriptorSource(fd: fd), framing: .bare)
        guard let m = try reader.next() else { throw MessageError.io("queue item \(id) is empty") }
        return m
    }

    /// Every committed item (a message file with its state), oldest first.
    public func items() throws -> [QueueItem] {
        // A queue that cannot be read is an error, never an empty queue: a cron
        // --run-queue would otherwise exit 0 while nothing is ever retried.
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw MessageError.io("cannot read the queue \(directory): \(error.localizedDescription)")
        }
        var out: [QueueItem] = []
        for name in names.sorted() where name.hasSuffix(".eml") {
            let id = String(name.dropLast(4))
            // A state file that is there but unreadable (made by another user) must
            // not pass for "no attempts yet": that would reset its counts silently.
            if access(path(id, "state"), F_OK) == 0 && access(path(id, "state"), R_OK) != 0 {
                throw MessageError.io("cannot read \(path(id, "state")): \(String(cString: strerror(errno))); was sl-deliver run as another user? (chown -R the queue to its owner)")
            }
            out.append(QueueItem(id: id, state: state(of: id)))
        }
        return out
    }

    /// The state of an item: its state file, or — before the first attempt, or if
    /// a crash tore the file — a fresh state dated by the ID.
    public func state(of id: String) -> QueueState {
        if let data = FileManager.default.contents(atPath: path(id, "state")),
           let state = try? JSONDecoder().decode(QueueState.self, from: data) {
            return state
        }
        return QueueState(created: Double(id.prefix(10)) ?? Date().timeIntervalSince1970)
    }

    /// An exclusive lock on an item, held until `unlock`: nil when another process
    /// holds it or the item is gone.
    public func lock(_ id: String) -> Int32? {
        let fd = open(path(id, "eml"), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { close(fd); return nil }
        return fd
    }

    public func unlock(_ fd: Int32) { close(fd) }

    // MARK: durable writes

    private func writeMessageDurably(_ message: Message, to final: String) throws {
        let temporary = "\(directory)/.tmp-\(getpid())-\(Self.newID())"
        try writeMessage(message, to: temporary, sync: true)
        try commit(temporary, final)
    }

    private func writeMessage(_ message: Message, to temporary: String, sync: Bool = false) throws {
        var m = message
        m.fromLine = nil
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw MessageError.io("cannot write to the queue \(directory): \(String(cString: strerror(errno)))") }
        do {
            try FileDescriptorIO.writeAll(fd, m.header.bytes)
            try m.body.forEachChunk { chunk in try chunk.withUnsafeBytes { try FileDescriptorIO.writeAll(fd, $0) } }
            if sync { guard fsync(fd) == 0 else { throw MessageError.io("cannot sync the queue file: \(String(cString: strerror(errno)))") } }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
    }

    private func writeDurably(_ final: String, _ data: Data) throws {
        let temporary = "\(directory)/.tmp-\(getpid())-\(Self.newID())"
        try writeFile(temporary, data, sync: true)
        try commit(temporary, final)
    }

    private func writeFile(_ temporary: String, _ data: Data, sync: Bool = false) throws {
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw MessageError.io("cannot write to the queue \(directory): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        do {
            try FileDescriptorIO.writeAll(fd, Array(data))
            if sync { guard fsync(fd) == 0 else { throw MessageError.io("cannot sync the queue file") } }
        } catch {
            unlink(temporary)
            throw error
        }
    }

    private func commit(_ temporary: String, _ final: String) throws {
        guard rename(temporary, final) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(temporary)
            throw MessageError.io("cannot commit \(final): \(why)")
        }
        syncDirectory()
    }

    private func syncDirectory() {
        let d = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if d >= 0 { _ = fsync(d); close(d) }
    }

    /// Removes temporary files that a crash left behind (older than an hour).
    public func cleanUp(now: Double) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names {
            let p = "\(directory)/\(name)"
            var st = stat()
            guard stat(p, &st) == 0 else { continue }
            let old = now - Double(st.st_mtim.tv_sec) > 3600
            if name.hasPrefix(".tmp-") && old { unlink(p) }
            if name.hasSuffix(".state") && old && !FileManager.default.fileExists(atPath: path(String(name.dropLast(6)), "eml")) { unlink(p) }
        }
    }
}
