import Foundation
import Testing
@testable import SLEscrow
import SLMessage

@Suite struct EscrowRoundTripTests {
    @Test(arguments: Backend.allCases) func eightBitMultipartRoundTripsByteForByte(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let m = try message(multipartMessage)
        let original = try m.bytes()
        let packed = try store.pack(m, sender: "alice@example.org",
                                    recipients: [EscrowRecipient(address: "bob@example.net",
                                                                 verification: .question("Pet?", answerKey("Fluffy")))],
                                    created: created, expires: expires)
        #expect(packed.id.count == 32)
        #expect(packed.id.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(packed.links.count == 1 && packed.links[0].index == 0 && packed.links[0].address == "bob@example.net")
        #expect(packed.links[0].secret.count == 43)
        #expect(try opened(store, packed, answer: "fluffy") == original)
        let status = try store.status(id: packed.id)
        #expect(status.size == original.count)
        #expect(status.recipients[0].firstOpen == during)
        #expect(status.recipients[0].question == "Pet?")
        #expect(try store.verify() == [])
    }

    @Test(arguments: Backend.allCases) func binaryBodyAndEmptyBodyRoundTrip(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let key = try answerKey("x")
        // Every byte value, and sizes around the 64 KiB chunk boundary.
        for size in [0, 1, 65535, 65536, 65537, 3 * 65536] {
            var m = try message("Subject: binary\n\n")
            let body = Spool()
            try body.append((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) })
            m.body = body
            let packed = try store.pack(m, sender: "a@example.org",
                                        recipients: [EscrowRecipient(address: "b@example.org", verification: .question("q", key))],
                                        created: created, expires: expires)
            #expect(try opened(store, packed, answer: "x") == (try m.bytes()), "size \(size)")
        }
        #expect(try store.verify() == [])
    }

    /// 100 MB through a spool that spilled to disk, compared 1 MB at a time with memcmp.
    @Test(arguments: Backend.allCases) func hundredMegabyteBodyRoundTrips(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let megabyte = 1 << 20
        let base = (0..<megabyte).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) }
        func block(_ k: Int) -> Bytes {
            var b = base
            withUnsafeBytes(of: UInt64(k).littleEndian) { for i in 0..<8 { b[i] = $0[i] } }
            return b
        }
        var m = try message("Subject: big\r\n\r\n")
        let body = Spool()
        for k in 0..<100 { try body.append(block(k)) }
        #expect(!body.isInMemory)
        m.body = body
        let header = m.header.bytes
        let packed = try store.pack(m, sender: "a@example.org",
                                    recipients: [EscrowRecipient(address: "b@example.org", verification: .question("q", answerKey("big")))],
                                    created: created, expires: expires)
        #expect(try store.status(id: packed.id).size == header.count + 100 * megabyte)

        var window = Bytes()
        window.reserveCapacity(2 * megabyte)
        var headerSeen = false
        var blocks = 0
        var mismatch = false
        try store.open(id: packed.id, index: 0, linkSecret: packed.links[0].secret, answer: "big", now: during) { chunk in
            window.append(contentsOf: chunk)
            if !headerSeen && window.count >= header.count {
                mismatch = mismatch || Array(window[0..<header.count]) != header
                window.removeFirst(header.count)
                headerSeen = true
            }
            while headerSeen && window.count >= megabyte {
                let expected = block(blocks)
                let same = window.withUnsafeBytes { w in expected.withUnsafeBytes { memcmp(w.baseAddress!, $0.baseAddress!, megabyte) == 0 } }
                mismatch = mismatch || !same
                window.removeFirst(megabyte)
                blocks += 1
            }
        }
        #expect(!mismatch)
        #expect(blocks == 100)
        #expect(window.isEmpty)
    }

    @Test(arguments: Backend.allCases) func answerKeyReusedAcrossMessagesOpensEach(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let key = try answerKey("Blue Whale")
        var packs: [(PackedMessage, Bytes)] = []
        for n in 0..<4 {
            let m = try message("Subject: number \(n)\n\nbody \(n)\n")
            let packed = try store.pack(m, sender: "a@example.org",
                                        recipients: [EscrowRecipient(address: "b@example.org", verification: .question("Animal?", key)),
                                                     EscrowRecipient(address: "c@example.org", verification: .question("Animal?", key))],
                                        created: created, expires: expires)
            packs.append((packed, try m.bytes()))
        }
        #expect(Set(packs.map(\.0.id)).count == 4)
        for (packed, original) in packs {
            #expect(packed.links[0].secret != packed.links[1].secret)
            #expect(try opened(store, packed, index: 0, answer: "blue whale") == original)
            #expect(try opened(store, packed, index: 1, answer: "BLUE  WHALE ") == original)
        }
    }
}

@Suite struct EscrowAccessTests {
    func packOne(_ store: EscrowStore, answer: String = "Fluffy the Cat") throws -> PackedMessage {
        try store.pack(message("Subject: hi\n\nhello\n"), sender: "alice@example.org",
                       recipients: [EscrowRecipient(address: "bob@example.net", verification: .question("Cat?", answerKey(answer)))],
                       created: created, expires: expires)
    }

    @Test(arguments: Backend.allCases) func wrongAnswersCountDownThenLockOut(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir, maximumAttempts: 3)
        let packed = try packOne(store)
        #expect(escrowError { _ = try opened(store, packed, answer: "dog") } == .wrongAnswer(remaining: 2))
        #expect(try store.status(id: packed.id).recipients[0].failedAttempts == 1)
        #expect(escrowError { _ = try opened(store, packed, answer: "mouse") } == .wrongAnswer(remaining: 1))
        #expect(escrowError { _ = try opened(store, packed, answer: "bird") } == .wrongAnswer(remaining: 0))
        let status = try store.status(id: packed.id).recipients[0]
        #expect(status.locked && status.failedAttempts == 3)
        #expect(escrowError { _ = try opened(store, packed, answer: "fluffy the cat") } == .lockedOut)
        #expect(status.firstOpen == nil)
    }

    @Test(arguments: Backend.allCases) func rightAnswerResetsTheCountAndMissingAnswerDoesNotCount(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir, maximumAttempts: 3)
        let packed = try packOne(store)
        #expect(escrowError { _ = try opened(store, packed, answer: "dog") } == .wrongAnswer(remaining: 2))
        #expect(escrowError { _ = try opened(store, packed, answer: nil) } == .wrongAnswer(remaining: 2))
        #expect(try store.status(id: packed.id).recipients[0].failedAttempts == 1)
        #expect(try opened(store, packed, answer: "FLUFFY the cat") == Array("Subject: hi\n\nhello\n".utf8))
        #expect(try store.status(id: packed.id).recipients[0].failedAttempts == 0)
    }

    @Test(arguments: Backend.allCases) func wrongLinkAndUnknownMessage(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let packed = try packOne(store)
        let other = try packOne(store)
        func attempt(_ id: String, _ index: Int, _ link: String) -> EscrowError? {
            escrowError { try store.open(id: id, index: index, linkSecret: link, answer: "fluffy the cat", now: during) { _ in } }
        }
        #expect(attempt(packed.id, 0, other.links[0].secret) == .wrongLink)
        #expect(attempt(packed.id, 0, "not-a-link") == .wrongLink)
        #expect(attempt(packed.id, 0, packed.links[0].secret + "A") == .wrongLink)
        #expect(attempt(packed.id, 1, packed.links[0].secret) == .notFound)
        #expect(attempt(String(repeating: "0", count: 32), 0, packed.links[0].secret) == .notFound)
        // A wrong link costs no attempt: the answer was never tried.
        #expect(try store.status(id: packed.id).recipients[0].failedAttempts == 0)
        #expect(attempt(packed.id, 0, packed.links[0].secret) == nil)
    }

    @Test(arguments: Backend.allCases) func retractedMessageCannotBeOpened(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let packed = try packOne(store)
        try store.retract(id: packed.id, now: during)
        #expect(escrowError { _ = try opened(store, packed, answer: "fluffy the cat") } == .retracted)
        #expect(!FileManager.default.fileExists(atPath: dir + "/content/\(packed.id).sealed"))
        #expect(try store.status(id: packed.id).retracted == during)
        #expect(escrowError { try store.retract(id: "nope", now: during) } == .notFound)
        #expect(try store.verify() == [])
    }

    @Test(arguments: Backend.allCases) func expiredAndPurged(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let packed = try packOne(store)
        let keep = try packOne(store)
        let after = expires.addingTimeInterval(1)
        #expect(escrowError { _ = try opened(store, packed, answer: "fluffy the cat", now: after) } == .expired(expires))
        #expect(EscrowError.expired(expires).description.hasPrefix("expired on 2025-"))
        #expect(try store.purge(now: during) == 0)
        #expect(try store.purge(now: after) == 2)
        #expect(try store.purge(now: after) == 0)
        #expect(!FileManager.default.fileExists(atPath: dir + "/content/\(packed.id).sealed"))
        // Purged: even a time before expiry says expired, since the content is gone.
        #expect(escrowError { _ = try opened(store, keep, answer: "fluffy the cat", now: during) } == .expired(expires))
        #expect(try store.status(id: packed.id).purged)
        #expect(try store.verify() == [])
    }

    @Test func orphanContentFilesArePurgedOnceOld() throws {
        let dir = temporaryStoreDirectory()
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let orphan = dir + "/content/0123456789abcdef0123456789abcdef.sealed"
        let temporary = dir + "/content/.tmp-1-x"
        #expect(FileManager.default.createFile(atPath: orphan, contents: Data([1, 2, 3])))
        #expect(FileManager.default.createFile(atPath: temporary, contents: Data([1])))
        try store.purge(now: Date())
        #expect(FileManager.default.fileExists(atPath: orphan))
        try store.purge(now: Date().addingTimeInterval(2 * 3600))
        #expect(!FileManager.default.fileExists(atPath: orphan))
        #expect(!FileManager.default.fileExists(atPath: temporary))
    }

    /// In PostgreSQL, content commits with its rows: content without a live record
    /// is never a pack in progress, and goes at the next purge, whatever its age.
    @Test func orphanContentRowsArePurged() throws {
        let uri = try temporaryStore(.postgresql)
        let store = try EscrowStore(location: uri)
        let packed = try packOne(store)
        let raw = RawStore(.postgresql, uri)
        try raw.setContent("0123456789abcdef0123456789abcdef", [1, 2, 3])
        #expect(try store.verify() == ["content 0123456789abcdef0123456789abcdef has no message (an orphan; purge removes it)"])
        try store.purge(now: during)
        #expect(try raw.contentIDs() == [packed.id])
        #expect(try store.verify() == [])
    }

    @Test(arguments: Backend.allCases) func receipts(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let packed = try packOne(store)
        #expect(try store.pendingReceipts().isEmpty)
        _ = try opened(store, packed, answer: "fluffy the cat")
        _ = try opened(store, packed, answer: "fluffy the cat", now: during.addingTimeInterval(60))
        let pending = try store.pendingReceipts()
        #expect(pending.count == 1)
        #expect(pending.first?.id == packed.id && pending.first?.recipient == "bob@example.net")
        #expect(pending.first?.sender == "alice@example.org" && pending.first?.opened == during)
        #expect(try store.status(id: packed.id).recipients[0].lastOpen == during.addingTimeInterval(60))
        try store.markReceiptSent(id: packed.id, index: 0)
        #expect(try store.pendingReceipts().isEmpty)
        #expect(escrowError { try store.markReceiptSent(id: packed.id, index: 7) } == .notFound)
    }

    @Test(arguments: Backend.allCases) func tamperedOrTruncatedContentIsCorrupt(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        var m = try message("Subject: t\n\n")
        let body = Spool()
        try body.append(Bytes(repeating: 0x41, count: 200_000))
        m.body = body
        let key = try answerKey("a")
        let recipients = [EscrowRecipient(address: "b@example.org", verification: .question("q", key))]
        let packed = try store.pack(m, sender: "a@example.org", recipients: recipients, created: created, expires: expires)
        let raw = RawStore(backend, dir)
        let sealed = try #require(try raw.content(packed.id))
        #expect(try opened(store, packed, answer: "a").count == 200_000 + 12)

        for offset in [3, 20, 100, sealed.count / 2, sealed.count - 1] {
            var damaged = sealed
            damaged[offset] ^= 0x01
            try raw.setContent(packed.id, damaged)
            guard case .corrupt = escrowError({ _ = try opened(store, packed, answer: "a") }) else {
                Issue.record("one flipped byte at \(offset) was not detected")
                continue
            }
        }
        // Cut after the second chunk: every chunk left authenticates, the FINAL is missing.
        let cut = 8 + 24 + 2 * (65536 + 17)
        try raw.setContent(packed.id, Array(sealed.prefix(cut)))
        #expect(escrowError { _ = try opened(store, packed, answer: "a") } == .corrupt("truncated"))
        #expect(try store.verify().contains { $0.contains(packed.id) })
        // Another message's content under this id fails too (the id is authenticated).
        let second = try store.pack(m, sender: "a@example.org", recipients: recipients, created: created, expires: expires)
        try raw.setContent(packed.id, try #require(try raw.content(second.id)))
        guard case .corrupt = escrowError({ _ = try opened(store, packed, answer: "a") }) else {
            Issue.record("content moved between messages was not detected")
            return
        }
    }

    @Test(arguments: Backend.allCases) func verifyReportsAMissingContentFile(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let packed = try packOne(store)
        #expect(try store.verify() == [])
        try RawStore(backend, dir).setContent(packed.id, nil)
        #expect(try store.verify() == ["message \(packed.id) has no content\(backend == .sqlite ? " file" : "")"])
        guard case .storage = escrowError({ _ = try opened(store, packed, answer: "fluffy the cat") }) else {
            Issue.record("opening without a content file did not fail with a storage error")
            return
        }
        #expect(try store.status(id: packed.id).recipients[0].firstOpen == nil)
        #expect(try store.pendingReceipts().isEmpty)
    }
}

@Suite struct EscrowAccountTests {
    @Test(arguments: Backend.allCases) func loginModeRoundTripAndWrongPassword(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir, maximumAttempts: 4)
        let m = try message(multipartMessage)
        // Without an account the message is sealed under its link alone, and the
        // link asks for a new password first (MessageCenterTests).
        let early = try store.pack(m, sender: "alice@example.org",
                                   recipients: [EscrowRecipient(address: "bob@example.net", verification: .login)],
                                   created: created, expires: expires)
        #expect(early.links[0].setsPassword)
        #expect(escrowError { _ = try opened(store, early, password: "anything") } == .accountNeeded("bob@example.net"))
        try store.createAccount(address: "Bob@Example.NET", password: "correct horse", parameters: fast)
        #expect(try store.hasAccount("bob@example.net"))
        #expect(try store.accounts().map(\.address) == ["bob@example.net"])
        #expect(escrowError { try store.createAccount(address: "bob@example.net", password: "x", parameters: fast) }
                == .accountExists("bob@example.net"))
        let packed = try store.pack(m, sender: "alice@example.org",
                                    recipients: [EscrowRecipient(address: "BOB@example.net", verification: .login)],
                                    created: created, expires: expires)
        #expect(try store.status(id: packed.id).recipients[0].mode == "login")
        #expect(escrowError { _ = try opened(store, packed, password: "wrong horse") } == .wrongPassword)
        #expect(try store.status(id: packed.id).recipients[0].failedAttempts == 1)
        #expect(try opened(store, packed, password: "correct horse") == (try m.bytes()))
        // The link is still needed with the right password.
        #expect(escrowError {
            try store.open(id: packed.id, index: 0, linkSecret: String(repeating: "A", count: 43), password: "correct horse",
                           now: during) { _ in }
        } == .wrongLink)

        try store.changePassword(address: "bob@example.net", old: "correct horse", new: "battery staple")
        #expect(escrowError { _ = try opened(store, packed, password: "correct horse") } == .wrongPassword)
        #expect(try opened(store, packed, password: "battery staple") == (try m.bytes()))
        #expect(escrowError { try store.changePassword(address: "bob@example.net", old: "nope", new: "x") } == .wrongPassword)

        try store.removeAccount(address: "bob@example.net")
        #expect(try !store.hasAccount("bob@example.net"))
        #expect(escrowError { _ = try opened(store, packed, password: "battery staple") } == .noAccount("BOB@example.net"))
        #expect(escrowError { try store.removeAccount(address: "bob@example.net") } == .noAccount("bob@example.net"))
    }

    @Test(arguments: Backend.allCases) func messageCenterOpensForTheSender(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let m = try message(multipartMessage)
        let recipients = try [EscrowRecipient(address: "bob@example.net", verification: .question("q", answerKey("a")))]
        #expect(escrowError {
            _ = try store.pack(m, sender: "alice@example.org", recipients: recipients, created: created, expires: expires,
                               messageCenter: true)
        } == .noAccount("alice@example.org"))
        try store.createAccount(address: "alice@example.org", password: "s3cret", parameters: fast)
        let packed = try store.pack(m, sender: "alice@example.org", recipients: recipients, created: created, expires: expires,
                                    messageCenter: true)
        var out = Bytes()
        try store.openAsSender(id: packed.id, password: "s3cret", now: during) { out += $0 }
        #expect(out == (try m.bytes()))
        #expect(escrowError { try store.openAsSender(id: packed.id, password: "guess", now: during) { _ in } } == .wrongPassword)
        let plain = try store.pack(m, sender: "alice@example.org", recipients: recipients, created: created, expires: expires)
        #expect(escrowError { try store.openAsSender(id: plain.id, password: "s3cret", now: during) { _ in } } == .notFound)
        try store.retract(id: packed.id, now: during)
        #expect(escrowError { try store.openAsSender(id: packed.id, password: "s3cret", now: during) { _ in } } == .retracted)
    }
}

@Suite struct EscrowSecurityTests {
    /// Nothing that was sealed, nor the answer, nor a link secret, appears anywhere in
    /// the store's files (database, WAL, shared memory, content).
    @Test(arguments: Backend.allCases) func storeHoldsNoPlaintext(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let text = """
            From: a@example.org\r
            To: b@example.org\r
            Subject: Zanzibar-Quokka-Subject-7731\r
            MIME-Version: 1.0\r
            Content-Type: multipart/mixed; boundary="zz"\r
            \r
            --zz\r
            Content-Type: text/plain\r
            \r
            Marmalade-Body-Secret-4412\r
            --zz\r
            Content-Type: text/plain; name="plan.txt"\r
            Content-Disposition: attachment; filename="plan.txt"\r
            \r
            Attachment-Payload-Heron-9981\r
            --zz--\r

            """
        let answer = "  Purple   ELEPHANT-Answer "
        try store.createAccount(address: "c@example.org", password: "Account-Password-Ibis-55", parameters: fast)
        try store.createAccount(address: "a@example.org", password: "Sender-Password-Lynx-66", parameters: fast)
        let packed = try store.pack(message(text), sender: "a@example.org",
                                    recipients: [EscrowRecipient(address: "b@example.org", verification: .question("Colour?", answerKey(answer))),
                                                 EscrowRecipient(address: "c@example.org", verification: .login)],
                                    created: created, expires: expires, messageCenter: true)
        #expect(try opened(store, packed, index: 0, answer: answer) == Array(text.utf8))
        #expect(try opened(store, packed, index: 1, password: "Account-Password-Ibis-55") == Array(text.utf8))
        #expect(escrowError { _ = try opened(store, packed, index: 0, answer: "Wrong-Guess-Answer-Okapi") } == .wrongAnswer(remaining: 4))

        var needles = ["Zanzibar-Quokka-Subject-7731", "Marmalade-Body-Secret-4412", "Attachment-Payload-Heron-9981",
                       answer, Answer.normalize(answer), "purple elephant-answer", "Wrong-Guess-Answer-Okapi",
                       "Account-Password-Ibis-55", "Sender-Password-Lynx-66"].map { Data($0.utf8) }
        for link in packed.links {
            needles.append(Data(link.secret.utf8))
            let raw = try #require(Sodium.fromBase64url(link.secret, count: 32))
            needles.append(Data(raw.publicCopy()))
        }
        let everything = try RawStore(backend, dir).everything()
        if backend == .sqlite {
            let files = everything.map(\.name)
            #expect(files.contains("escrow.sqlite") && files.contains("escrow.sqlite-wal"))
            #expect(files.contains("content/\(packed.id).sealed"))
        } else {
            // The dump shows bytea in hex: look for the needles that way too.
            needles += needles.map(RawStore.hex)
        }
        for (name, data) in everything {
            for needle in needles {
                #expect(data.range(of: needle) == nil, "\(name) contains \(String(decoding: needle, as: UTF8.self))")
            }
        }
        // The scan can fail: the question is meant to be stored, and is found.
        #expect(everything.contains { $0.data.range(of: Data("Colour?".utf8)) != nil })
    }

    @Test func storeFilesArePrivate() throws {
        let dir = temporaryStoreDirectory()
        defer { cleanUp(dir) }
        _ = try EscrowStore(location: dir)
        for (path, mode) in [(dir, 0o700), (dir + "/content", 0o700), (dir + "/escrow.sqlite", 0o600)] {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? Int).map { $0 & 0o777 } == mode, "\(path)")
        }
    }

    @Test(arguments: Backend.allCases) func pepperChangesTheKeys(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let pepper = SecretBytes.random(32)
        let store = try EscrowStore(location: dir, pepper: pepper)
        let packed = try store.pack(message("Subject: p\n\nx\n"), sender: "a@example.org",
                                    recipients: [EscrowRecipient(address: "b@example.org", verification: .question("q", answerKey("salt")))],
                                    created: created, expires: expires)
        // Without the pepper (a stolen database) even the right answer does not unwrap.
        let unpeppered = try EscrowStore(location: dir)
        #expect(escrowError { _ = try opened(unpeppered, packed, answer: "salt") } == .wrongAnswer(remaining: 4))
        #expect(try opened(store, packed, answer: "salt") == Array("Subject: p\n\nx\n".utf8))
        #expect(escrowError { _ = try EscrowStore(location: dir, pepper: SecretBytes.random(16)) } != nil)
    }

    @Test func pepperFileMustBePrivateAndLongEnough() throws {
        let dir = temporaryStoreDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { cleanUp(dir) }
        let path = dir + "/pepper"
        let bytes = (0..<48).map { UInt8($0) }
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o644]))
        guard case .storage(let why) = escrowError({ _ = try Pepper.load(path: path) }) else {
            Issue.record("a world-readable pepper file was accepted")
            return
        }
        #expect(why.contains("chmod 600"))
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: path)
        #expect(escrowError { _ = try Pepper.load(path: path) } != nil)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        let pepper = try Pepper.load(path: path)
        #expect(pepper.count == 48)
        #expect(pepper.withUnsafeBytes { Array($0) } == bytes)
        let short = dir + "/short"
        #expect(FileManager.default.createFile(atPath: short, contents: Data(bytes.prefix(31)), attributes: [.posixPermissions: 0o600]))
        #expect(escrowError { _ = try Pepper.load(path: short) } != nil)
        #expect(escrowError { _ = try Pepper.load(path: dir + "/missing") } != nil)
    }

    @Test func kdfParametersBelowTheMinimumAreRefused() throws {
        #expect(throws: EscrowError.weakKDF) { try KDFParameters(opsLimit: 1, memoryLimit: 64 << 20) }
        #expect(throws: EscrowError.weakKDF) { try KDFParameters(opsLimit: 3, memoryLimit: (19 << 20) - 1) }
        #expect(try KDFParameters(opsLimit: 2, memoryLimit: 19 << 20) == .minimum)
        #expect(KDFParameters.standard == (try KDFParameters(opsLimit: 3, memoryLimit: 64 << 20)))
        let weak = Data(#"{"opsLimit":1,"memoryLimit":1048576}"#.utf8)
        #expect(throws: EscrowError.weakKDF) { try JSONDecoder().decode(KDFParameters.self, from: weak) }
        let round = try JSONDecoder().decode(KDFParameters.self, from: JSONEncoder().encode(KDFParameters.standard))
        #expect(round == .standard)
    }

    @Test func answerKeysAreSaltedAndDeterministicPerSalt() throws {
        let a = try answerKey("Fluffy")
        let b = try answerKey("Fluffy")
        #expect(a.salt.count == 16 && a.salt != b.salt)
        #expect(a.key.publicCopy() != b.key.publicCopy())
        let again = try AnswerKey.derive(answer: " FLUFFY ", salt: a.salt, parameters: fast)
        #expect(again.key.publicCopy() == a.key.publicCopy())
        #expect(a.key.count == 32 && a.parameters == fast)
    }

    /// Prints the cost of one derivation with each parameter set (for the tools' authors).
    @Test func argon2idTiming() throws {
        for (name, p) in [("minimum", KDFParameters.minimum), ("standard", KDFParameters.standard)] {
            let start = Date()
            _ = try AnswerKey.derive(answer: "timing", parameters: p)
            let ms = Int(Date().timeIntervalSince(start) * 1000)
            print("Argon2id \(name) (t=\(p.opsLimit), m=\(p.memoryLimit >> 20) MiB): \(ms) ms")
            #expect(ms > 0)
        }
    }
}

@Suite struct AnswerNormalisationTests {
    @Test(arguments: [
        ("  Fluffy  the\tCat ", "fluffy the cat"),
        ("ＦＬＵＦＦＹ", "fluffy"),              // fullwidth letters (NFKC)
        ("fluffy\u{00A0}the\u{2003}cat", "fluffy the cat"),   // no-break and em spaces
        ("Line\nbreak\r\nhere", "line break here"),
        ("Ｃａｆé", "café"),
        ("Cafe\u{0301}", "café"),             // decomposed accent composes
        ("ﬁsh", "fish"),                      // ligature (NFKC)
        ("ΣΊΣΥΦΟΣ", "σίσυφοσ"),               // Greek: folding gives medial sigma everywhere
        ("", ""),
        ("   ", ""),
    ])
    func normalises(_ input: String, _ expected: String) {
        #expect(Answer.normalize(input) == expected)
        #expect(Answer.normalize(Answer.normalize(input)) == Answer.normalize(input))
    }

    /// Foundation's case-insensitive folding here is full case folding: ß folds to "ss",
    /// so "Straße", "STRASSE" and "strasse" are one answer.
    @Test func germanSharpS() {
        #expect(Answer.normalize("Straße") == "strasse")
        #expect(Answer.normalize("STRASSE") == "strasse")
        #expect(Answer.normalize("Straße") == Answer.normalize("STRASSE"))
    }
}

/// The pickup preview: what a page shows before it asks for a secret.
@Suite struct PickupPreviewTests {
    @Test(arguments: Backend.allCases) func aGoodLinkShowsSenderExpiryAndQuestionAndCostsNoAttempt(_ backend: Backend) throws {
        let dir = try temporaryStore(backend); defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir, maximumAttempts: 3)
        let packed = try store.pack(try message("From: a@clinic.test\nSubject: s\n\nbody\n"), sender: "a@clinic.test",
                                    recipients: [EscrowRecipient(address: "erin@example.net", verification: .question("Street?", try answerKey("Elm")))],
                                    created: created, expires: expires)
        for _ in 0..<5 {
            let p = try store.preview(id: packed.id, index: 0, linkSecret: packed.links[0].secret, now: during)
            #expect(p == PickupPreview(id: packed.id, index: 0, sender: "a@clinic.test", recipient: "erin@example.net",
                                       expires: expires, proof: .question("Street?"), attemptsLeft: 3))
        }
        #expect(try opened(store, packed, answer: "elm") == Array("From: a@clinic.test\nSubject: s\n\nbody\n".utf8))
    }

    @Test(arguments: Backend.allCases) func aBadLinkOrAClosedMessageShowsNothing(_ backend: Backend) throws {
        let dir = try temporaryStore(backend); defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir, maximumAttempts: 3)
        try store.createAccount(address: "frank@example.net", password: "correct horse", parameters: fast)
        let packed = try store.pack(try message("Subject: s\n\nbody\n"), sender: "a@clinic.test",
                                    recipients: [EscrowRecipient(address: "erin@example.net", verification: .question("Street?", try answerKey("Elm"))),
                                                 EscrowRecipient(address: "frank@example.net", verification: .login)],
                                    created: created, expires: expires)
        let other = try store.pack(try message("Subject: t\n\nbody\n"), sender: "a@clinic.test",
                                   recipients: [EscrowRecipient(address: "erin@example.net", verification: .question("Street?", try answerKey("Elm")))],
                                   created: created, expires: expires)
        #expect(escrowError { _ = try store.preview(id: packed.id, index: 0, linkSecret: other.links[0].secret, now: during) } == .wrongLink)
        #expect(escrowError { _ = try store.preview(id: String(repeating: "0", count: 32), index: 0, linkSecret: packed.links[0].secret, now: during) } == .notFound)
        #expect(escrowError { _ = try store.preview(id: packed.id, index: 0, linkSecret: packed.links[0].secret, now: expires.addingTimeInterval(1)) } == .expired(expires))
        #expect(try store.preview(id: packed.id, index: 1, linkSecret: packed.links[1].secret, now: during).proof == .login)
        try store.retract(id: packed.id, now: during)
        #expect(escrowError { _ = try store.preview(id: packed.id, index: 0, linkSecret: packed.links[0].secret, now: during) } == .retracted)
    }
}
