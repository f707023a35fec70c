import Foundation
import SLMessage
#if canImport(Glibc)
import Glibc
#endif

/// Where the store keeps each message's sealed content (SealedContent's format):
/// files beside the SQLite database, or rows in PostgreSQL, so several machines
/// share one store without a shared file system.
protocol SealedContentStore: AnyObject {
    /// Seals the content (`seal` writes it through the sink it is given and
    /// returns the plaintext size) and makes it visible together with the rows
    /// `rows` writes in `db`: a record is wholly there or not at all.
    func store(id: String, in db: any EscrowDatabase, seal: (@escaping ContentSealer.Sink) throws -> Int,
               rows: (Int) throws -> Void) throws -> Int
    /// Runs `body` on the content's bytes; false when there is no content for `id`.
    func read(id: String, _ body: (ContentOpener.Source) throws -> Void) throws -> Bool
    /// Called inside the transaction that retracts or purges `id`.
    func destroyInTransaction(id: String) throws
    /// Called after that transaction committed.
    func destroyAfterCommit(id: String)
    /// Content no live record needs (left by a crash, or retracted since).
    func removeOrphans(of store: EscrowStore, now: Date) throws
    /// Live records whose content is missing or of the wrong size, and content no
    /// record names.
    func problems(live: [(id: String, size: Int)], known: Set<String>, now: Date) throws -> [String]
}

/// content/ID.sealed beside escrow.sqlite. The file is written under a temporary
/// name, fsync'd, renamed and the directory fsync'd before its rows are inserted,
/// so a record is either wholly visible or absent; a crash in between leaves an
/// orphan file that `purge` removes once it is an hour old (younger ones may be a
/// pack in progress in another process).
final class FileContentStore: SealedContentStore {
    let directory: String
    static let orphanAge: TimeInterval = 3600

    init(directory: String) { self.directory = directory }

    func path(_ id: String) -> String { "\(directory)/\(id).sealed" }

    func store(id: String, in db: any EscrowDatabase, seal: (@escaping ContentSealer.Sink) throws -> Int,
               rows: (Int) throws -> Void) throws -> Int {
        let size = try write(id: id, seal: seal)
        do {
            try db.transaction { try rows(size) }
        } catch {
            unlink(path(id))
            throw error
        }
        return size
    }

    private func write(id: String, seal: (@escaping ContentSealer.Sink) throws -> Int) throws -> Int {
        let temporary = "\(directory)/.tmp-\(getpid())-\(id)"
        let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw EscrowError.storage("cannot write to \(directory): \(String(cString: strerror(errno)))")
        }
        let size: Int
        do {
            size = try seal { bytes in
                do {
                    try bytes.withUnsafeBytes { try FileDescriptorIO.writeAll(fd, $0) }
                } catch {
                    throw EscrowError.storage("cannot write sealed content: \(error)")
                }
            }
            guard fsync(fd) == 0 else {
                throw EscrowError.storage("cannot sync sealed content: \(String(cString: strerror(errno)))")
            }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path(id)) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(temporary)
            throw EscrowError.storage("cannot store sealed content: \(why)")
        }
        let d = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard d >= 0 else { throw EscrowError.storage("cannot open \(directory): \(String(cString: strerror(errno)))") }
        defer { close(d) }
        guard fsync(d) == 0 else { throw EscrowError.storage("cannot sync \(directory): \(String(cString: strerror(errno)))") }
        return size
    }

    func read(id: String, _ body: (ContentOpener.Source) throws -> Void) throws -> Bool {
        let fd = Glibc.open(path(id), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return false }
            throw EscrowError.storage("cannot read the sealed content of \(id): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        try body(ContentOpener.reading(fd))
        return true
    }

    func destroyInTransaction(id: String) throws {}

    /// After the commit: a crash in between leaves a file that purge removes.
    func destroyAfterCommit(id: String) { unlink(path(id)) }

    /// Content files of retracted or purged messages (a crash after the commit), and,
    /// once older than an hour, content files without a row (a crash before it) and
    /// temporary files.
    func removeOrphans(of store: EscrowStore, now: Date) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        guard !names.isEmpty else { return }
        let live = try store.liveIDs()
        let known = try store.knownIDs()
        for name in names {
            let file = "\(directory)/\(name)"
            if name.hasSuffix(".sealed") {
                let id = String(name.dropLast(7))
                if live.contains(id) { continue }
                if known.contains(id) || isOlder(file, than: Self.orphanAge, now: now) { unlink(file) }
            } else if name.hasPrefix(".tmp-") && isOlder(file, than: Self.orphanAge, now: now) {
                unlink(file)
            }
        }
    }

    func problems(live: [(id: String, size: Int)], known: Set<String>, now: Date) throws -> [String] {
        var problems: [String] = []
        for m in live {
            var st = stat()
            if stat(path(m.id), &st) != 0 {
                problems.append("message \(m.id) has no content file")
            } else if Int(st.st_size) != SealedContent.sealedSize(plaintext: m.size) {
                problems.append("the content file of \(m.id) has \(st.st_size) bytes, expected \(SealedContent.sealedSize(plaintext: m.size))")
            }
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names.sorted() where name.hasSuffix(".sealed") {
            let id = String(name.dropLast(7))
            if !known.contains(id) && isOlder("\(directory)/\(name)", than: Self.orphanAge, now: now) {
                problems.append("content file \(name) has no message (an orphan; purge removes it)")
            }
        }
        return problems
    }

    private func isOlder(_ path: String, than age: TimeInterval, now: Date) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0 else { return false }
        return now.timeIntervalSince1970 - Double(st.st_mtim.tv_sec) > age
    }
}

/// Sealed content as rows of `sl_escrow.content`, a MiB each, written in the same
/// transaction as the record's rows: a packer killed half way leaves nothing, and
/// no other process ever sees a record without its content. Written and read a
/// row at a time, so memory stays flat whatever the message's size.
final class PostgresContentStore: SealedContentStore {
    let db: PostgresEscrowDatabase
    static let rowBytes = 1 << 20

    init(db: PostgresEscrowDatabase) { self.db = db }

    func store(id: String, in _: any EscrowDatabase, seal: (@escaping ContentSealer.Sink) throws -> Int,
               rows: (Int) throws -> Void) throws -> Int {
        try db.transaction {
            let writer = RowWriter(db: db, id: id)
            let size = try seal { try writer.append($0) }
            try writer.flush()
            try rows(size)
            return size
        }
    }

    /// Buffers sealed bytes into MiB rows.
    final class RowWriter {
        let db: PostgresEscrowDatabase
        let id: String
        var buffer: [UInt8] = []
        var seq = 0
        private(set) var total = 0

        init(db: PostgresEscrowDatabase, id: String) {
            self.db = db
            self.id = id
            buffer.reserveCapacity(PostgresContentStore.rowBytes)
        }

        func append(_ bytes: ArraySlice<UInt8>) throws {
            var rest = bytes
            while !rest.isEmpty {
                let n = min(rest.count, PostgresContentStore.rowBytes - buffer.count)
                buffer += rest.prefix(n)
                rest = rest.dropFirst(n)
                if buffer.count == PostgresContentStore.rowBytes { try flush() }
            }
        }

        func flush() throws {
            guard !buffer.isEmpty else { return }
            try db.run("INSERT INTO content(id, seq, data) VALUES (?, ?, ?)", [.text(id), .int(seq), .blob(buffer)])
            seq += 1
            total += buffer.count
            buffer.removeAll(keepingCapacity: true)
        }
    }

    func read(id: String, _ body: (ContentOpener.Source) throws -> Void) throws -> Bool {
        var row = try chunk(id, 0)
        guard row != nil else { return false }
        var seq = 0
        var offset = 0
        try body { buffer in
            while let data = row {
                if offset < data.count {
                    let n = min(buffer.count, data.count - offset)
                    data.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
                    offset += n
                    return n
                }
                // A row missing in the middle (retracted meanwhile) ends the content
                // early, which the opener reports as truncated.
                seq += 1
                offset = 0
                row = try self.chunk(id, seq)
            }
            return 0
        }
        return true
    }

    private func chunk(_ id: String, _ seq: Int) throws -> [UInt8]? {
        try db.query("SELECT data FROM content WHERE id = ? AND seq = ?", [.text(id), .int(seq)]) { $0.blob(0) ?? [] }.first
    }

    func destroyInTransaction(id: String) throws {
        try db.run("DELETE FROM content WHERE id = ?", [.text(id)])
    }

    func destroyAfterCommit(id: String) {}

    /// Content and rows commit together, so anything left is content of a record
    /// retracted or purged by an older sl, or deleted by hand: removed whatever its age.
    func removeOrphans(of store: EscrowStore, now: Date) throws {
        try db.run("""
            DELETE FROM content c WHERE NOT EXISTS (
                SELECT 1 FROM messages m WHERE m.id = c.id AND m.retracted IS NULL AND m.purged = 0)
            AND NOT EXISTS (SELECT 1 FROM inbound i WHERE i.id = c.id AND i.wrapped_key IS NOT NULL)
            """, [])
    }

    func problems(live: [(id: String, size: Int)], known: Set<String>, now: Date) throws -> [String] {
        var sizes: [String: Int] = [:]
        for (id, size) in try db.query("SELECT id, sum(length(data)) FROM content GROUP BY id", [], { ($0.text(0), $0.int(1)) }) {
            sizes[id] = size
        }
        var problems: [String] = []
        for m in live {
            guard let size = sizes[m.id] else { problems.append("message \(m.id) has no content"); continue }
            let expected = SealedContent.sealedSize(plaintext: m.size)
            if size != expected { problems.append("the content of \(m.id) has \(size) bytes, expected \(expected)") }
        }
        for id in sizes.keys.sorted() where !known.contains(id) {
            problems.append("content \(id) has no message (an orphan; purge removes it)")
        }
        return problems
    }
}
