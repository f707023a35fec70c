import Foundation
import SLEscrow
import SLMessage
import SLTestPeers
import Testing

/// Where a test's store lives: every store test runs on both.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// A directory: escrow.sqlite and content files.
    case sqlite
    /// A database of its own in the test process's PostgreSQL cluster (PostgresPeer),
    /// its schema made by EscrowStore.migrate as `sl-escrow migrate` does.
    case postgresql

    var testDescription: String { rawValue }
}

/// A fresh store location for one test: a directory under NSTemporaryDirectory,
/// or the URI of a new migrated database. `cleanUp` removes a directory; the
/// databases go with the cluster when the test process exits.
func temporaryStore(_ backend: Backend) throws -> String {
    switch backend {
    case .sqlite: return temporaryStoreDirectory()
    case .postgresql:
        let uri = try PostgresPeer.shared.get().newDatabase()
        try EscrowStore.migrate(uri: uri)
        return uri
    }
}

/// A fresh store directory under NSTemporaryDirectory, removed by `cleanUp`.
func temporaryStoreDirectory() -> String {
    NSTemporaryDirectory() + "sl-escrow-test-\(UUID().uuidString)"
}

func cleanUp(_ directory: String) { try? FileManager.default.removeItem(atPath: directory) }

let created = Date(timeIntervalSince1970: 1_750_000_000)
let expires = created.addingTimeInterval(14 * 86400)
let during = created.addingTimeInterval(3600)

/// Minimum Argon2id cost keeps the suite fast; the scheme is the same.
let fast = KDFParameters.minimum

func answerKey(_ answer: String) throws -> AnswerKey {
    try AnswerKey.derive(answer: answer, parameters: fast)
}

func message(_ text: String) throws -> Message {
    try Message(bytes: Array(text.utf8))
}

/// The plaintext `open` streams, gathered (small messages only).
func opened(_ store: EscrowStore, _ packed: PackedMessage, index: Int = 0, answer: String? = nil,
            password: String? = nil, now: Date = during) throws -> Bytes {
    var out = Bytes()
    try store.open(id: packed.id, index: index, linkSecret: packed.links[index].secret, answer: answer,
                   password: password, now: now) { out += $0 }
    return out
}

/// The error `body` throws as an EscrowError, nil when it throws none.
func escrowError(_ body: () throws -> Void) -> EscrowError? {
    do {
        try body()
        return nil
    } catch let e as EscrowError {
        return e
    } catch {
        return .storage("unexpected error type: \(error)")
    }
}

let multipartMessage = """
    From: Alice <alice@example.org>\r
    To: Bob <bob@example.net>\r
    Subject: Quarterly numbers\r
    MIME-Version: 1.0\r
    Content-Type: multipart/mixed; boundary="b1"\r
    \r
    --b1\r
    Content-Type: text/plain; charset=utf-8\r
    Content-Transfer-Encoding: 8bit\r
    \r
    Grüße aus Köln — 8-bit text, ¡olé!\r
    --b1\r
    Content-Type: application/octet-stream; name="numbers.bin"\r
    Content-Disposition: attachment; filename="numbers.bin"\r
    Content-Transfer-Encoding: base64\r
    \r
    AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v\r
    --b1--\r

    """

/// A store as whoever copies it sees it, read and changed past the store's code:
/// its files, or its database through psql and pg_dump (the server's own tools).
struct RawStore {
    let backend: Backend
    let location: String

    init(_ backend: Backend, _ location: String) {
        self.backend = backend
        self.location = location
    }

    private var database: String { PostgresPeer.database(of: location) }
    private func peer() throws -> PostgresPeer { try PostgresPeer.shared.get() }
    private func contentPath(_ id: String) -> String { location + "/content/\(id).sealed" }

    /// Every byte the store keeps, by name: the files of a directory store, or the
    /// dump of a database (bytea in hex, so `hexNeedles` finds sealed bytes in it).
    func everything() throws -> [(name: String, data: Data)] {
        switch backend {
        case .sqlite:
            return try FileManager.default.subpathsOfDirectory(atPath: location).compactMap { name in
                FileManager.default.contents(atPath: location + "/" + name).map { (name, $0) }
            }
        case .postgresql:
            return [("pg_dump", Data(try peer().dump(database).utf8))]
        }
    }

    /// `needle` as the dump shows bytea: lowercase hex.
    static func hex(_ needle: Data) -> Data { Data(needle.map { String(format: "%02x", $0) }.joined().utf8) }

    /// A record's sealed content, nil when it has none.
    func content(_ id: String) throws -> [UInt8]? {
        switch backend {
        case .sqlite:
            return FileManager.default.contents(atPath: contentPath(id)).map { Array($0) }
        case .postgresql:
            let hex = try peer().psql(database, "SELECT encode(data, 'hex') FROM sl_escrow.content WHERE id = '\(id)' ORDER BY seq")
                .split(separator: "\n").joined()
            guard !hex.isEmpty else { return nil }
            var bytes: [UInt8] = []
            var i = hex.startIndex
            while i < hex.endIndex {
                let j = hex.index(i, offsetBy: 2)
                bytes.append(UInt8(hex[i..<j], radix: 16)!)
                i = j
            }
            return bytes
        }
    }

    /// Replaces a record's sealed content (nil: removes it).
    func setContent(_ id: String, _ bytes: [UInt8]?) throws {
        switch backend {
        case .sqlite:
            if let bytes {
                try Data(bytes).write(to: URL(fileURLWithPath: contentPath(id)))
            } else {
                try FileManager.default.removeItem(atPath: contentPath(id))
            }
        case .postgresql:
            var script = "BEGIN;\nDELETE FROM sl_escrow.content WHERE id = '\(id)';\n"
            if let bytes {
                let hex = bytes.map { String(format: "%02x", $0) }.joined()
                script += "INSERT INTO sl_escrow.content(id, seq, data) VALUES ('\(id)', 0, decode('\(hex)', 'hex'));\n"
            }
            try peer().psql(database, script: script + "COMMIT;\n")
        }
    }

    /// The ids that have sealed content.
    func contentIDs() throws -> Set<String> {
        switch backend {
        case .sqlite:
            let names = try FileManager.default.contentsOfDirectory(atPath: location + "/content")
            return Set(names.filter { $0.hasSuffix(".sealed") }.map { String($0.dropLast(7)) })
        case .postgresql:
            return Set(try peer().psql(database, "SELECT DISTINCT id FROM sl_escrow.content").split(separator: "\n").map(String.init))
        }
    }
}
