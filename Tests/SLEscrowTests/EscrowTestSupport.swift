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
