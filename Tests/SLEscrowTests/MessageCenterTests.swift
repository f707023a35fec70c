import Foundation
import SLEscrow
import SLMessage
import Testing

/// Accounts as the portal uses them: set up with a notice's link, sign in, the
/// inbox and what it can open, the sender's view and retraction, password reset
/// (and what it does to messages sealed for the old key), session grants.
@Suite struct MessageCenterTests {
    func read(_ store: EscrowStore, _ key: ContentKey) throws -> Bytes {
        var out = Bytes()
        try store.read(key, now: during) { out.append(contentsOf: $0) }
        return out
    }

    func pack(_ store: EscrowStore, to address: String = "bob@example.net", center: Bool = false) throws -> PackedMessage {
        try store.pack(try message(multipartMessage), sender: "alice@example.org",
                       recipients: [EscrowRecipient(address: address, verification: .login)],
                       created: created, expires: expires, messageCenter: center)
    }

    @Test(arguments: Backend.allCases) func theNoticeLinkSetsUpTheAccountOnceAndMovesTheMessageToIt(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        let original = try message(multipartMessage).bytes()
        let first = try pack(store), second = try pack(store)
        #expect(first.links[0].setsPassword && second.links[0].setsPassword)
        let preview = try store.preview(id: first.id, index: 0, linkSecret: first.links[0].secret, now: during)
        #expect(preview.proof == .setPassword)
        // A wrong link cannot set anything up.
        #expect(escrowError {
            _ = try store.setUpAccount(id: first.id, index: 0, linkSecret: second.links[0].secret, password: "correct horse",
                                       parameters: fast, now: during)
        } == .wrongLink)
        #expect(try !store.hasAccount("bob@example.net"))

        let key = try store.setUpAccount(id: first.id, index: 0, linkSecret: first.links[0].secret, password: "correct horse",
                                         parameters: fast, now: during)
        #expect(try read(store, key) == original)
        #expect(try store.hasAccount("bob@example.net"))
        // Once: the same link now asks for the password, and cannot set another.
        #expect(try store.preview(id: first.id, index: 0, linkSecret: first.links[0].secret, now: during).proof == .login)
        #expect(escrowError {
            _ = try store.setUpAccount(id: first.id, index: 0, linkSecret: first.links[0].secret, password: "evil horse",
                                       parameters: fast, now: during)
        } == .accountExists("bob@example.net"))

        let account = try store.signIn(address: "Bob@Example.net", password: "correct horse")
        let inbox = try store.inbox(for: account, now: during)
        #expect(Dictionary(uniqueKeysWithValues: inbox.map { ($0.id, $0.state) }) == [first.id: .readable, second.id: .needsLink])
        #expect(try read(store, try store.unlock(id: first.id, index: 0, account: account, now: during)) == original)
        #expect(escrowError { _ = try store.unlock(id: second.id, index: 0, account: account, now: during) } == .linkNeeded)
        // The second message's link with the password moves it to the account too.
        var out = Bytes()
        try store.open(id: second.id, index: 0, linkSecret: second.links[0].secret, password: "correct horse", now: during) {
            out.append(contentsOf: $0)
        }
        #expect(out == original)
        #expect(try store.inbox(for: account, now: during).allSatisfy { $0.state == .readable })
        #expect(escrowError { _ = try store.signIn(address: "bob@example.net", password: "wrong horse") } == .wrongPassword)
        #expect(escrowError { _ = try store.signIn(address: "nobody@example.net", password: "x", parameters: fast) } == .wrongPassword)
    }

    @Test(arguments: Backend.allCases) func anAccountOpensOnlyItsOwnMessages(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        try store.createAccount(address: "bob@example.net", password: "bob's password", parameters: fast)
        try store.createAccount(address: "eve@example.net", password: "eve's password", parameters: fast)
        let toBob = try pack(store)
        #expect(!toBob.links[0].setsPassword)
        let eve = try store.signIn(address: "eve@example.net", password: "eve's password")
        #expect(try store.inbox(for: eve, now: during).isEmpty)
        #expect(escrowError { _ = try store.unlock(id: toBob.id, index: 0, account: eve, now: during) } == .notFound)
        #expect(escrowError { _ = try store.unlockAsSender(id: toBob.id, account: eve, now: during) } == .notFound)
        #expect(escrowError { try store.retract(id: toBob.id, by: eve, now: during) } == .notFound)
        #expect(try store.status(id: toBob.id).retracted == nil)
        let bob = try store.signIn(address: "bob@example.net", password: "bob's password")
        let entry = try #require(try store.inbox(for: bob, now: during).first)
        #expect(entry.state == .readable && entry.firstOpen == nil)
        _ = try store.unlock(id: toBob.id, index: 0, account: bob, now: during)
        #expect(try store.inbox(for: bob, now: expires.addingTimeInterval(1)).first?.state == .expired)
        #expect(escrowError { _ = try store.unlock(id: toBob.id, index: 0, account: bob, now: expires.addingTimeInterval(1)) }
                == .expired(expires))
    }

    @Test(arguments: Backend.allCases) func theSenderSeesOpensAndRetracts(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        try store.createAccount(address: "alice@example.org", password: "alice's password", parameters: fast)
        try store.createAccount(address: "bob@example.net", password: "bob's password", parameters: fast)
        let packed = try pack(store, center: true)
        let alice = try store.signIn(address: "alice@example.org", password: "alice's password")
        #expect(try store.sent(by: alice).map(\.id) == [packed.id])
        let senderKey = try store.unlockAsSender(id: packed.id, account: alice, now: during)
        #expect(senderKey.index == nil)
        #expect(try read(store, senderKey) == (try message(multipartMessage).bytes()))
        // The recipient opens; the sender sees when.
        let bob = try store.signIn(address: "bob@example.net", password: "bob's password")
        let bobKey = try store.unlock(id: packed.id, index: 0, account: bob, now: during)
        try store.read(bobKey, recordOpen: true, now: during) { _ in }
        #expect(try store.sent(by: alice).first?.recipients.first?.firstOpen == during)
        try store.retract(id: packed.id, by: alice, now: during)
        #expect(escrowError { _ = try read(store, bobKey) } == .retracted)
        #expect(try store.inbox(for: bob, now: during).first?.state == .retracted)
    }

    @Test(arguments: Backend.allCases) func aPasswordResetMakesANewKeyAndOldMessagesStaySealed(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        try store.createAccount(address: "bob@example.net", password: "forgotten password", parameters: fast)
        let before = try pack(store)
        #expect(try store.issueResetToken(address: "nobody@example.net", now: during) == nil)
        let token = try #require(try store.issueResetToken(address: "BOB@example.net", now: during))
        #expect(escrowError { try store.resetPassword(token: token, password: "new password", parameters: fast,
                                                      now: during.addingTimeInterval(EscrowStore.resetLifetime + 1)) } == .wrongToken)
        #expect(escrowError { try store.resetPassword(token: String(token.reversed()), password: "x", parameters: fast, now: during) } == .wrongToken)
        #expect(try store.resetPassword(token: token, password: "new password", parameters: fast, now: during) == "bob@example.net")
        // Once only.
        #expect(escrowError { try store.resetPassword(token: token, password: "evil", parameters: fast, now: during) } == .wrongToken)
        #expect(escrowError { _ = try store.signIn(address: "bob@example.net", password: "forgotten password") } == .wrongPassword)
        let bob = try store.signIn(address: "bob@example.net", password: "new password")
        #expect(try store.inbox(for: bob, now: during).first?.state == .sealedForEarlierPassword)
        #expect(escrowError {
            try store.open(id: before.id, index: 0, linkSecret: before.links[0].secret, password: "new password", now: during) { _ in }
        } == .sealedForEarlierPassword)
        // Not the visitor's fault: no attempt counted.
        #expect(try store.status(id: before.id).recipients[0].failedAttempts == 0)
        let after = try pack(store)
        #expect(try read(store, try store.unlock(id: after.id, index: 0, account: bob, now: during)) == (try message(multipartMessage).bytes()))
        // No more than three unused links at once.
        let links = try (0..<5).map { _ in try store.issueResetToken(address: "bob@example.net", now: during) }
        #expect(links.compactMap { $0 }.count == EscrowStore.outstandingResets)
    }

    @Test(arguments: Backend.allCases) func aSessionGrantOpensOnlyWithItsCookieKey(_ backend: Backend) throws {
        let dir = try temporaryStore(backend)
        defer { cleanUp(dir) }
        let store = try EscrowStore(location: dir)
        try store.createAccount(address: "bob@example.net", password: "bob's password", parameters: fast)
        let packed = try pack(store)
        let bob = try store.signIn(address: "bob@example.net", password: "bob's password")
        let key = try store.unlock(id: packed.id, index: 0, account: bob, now: during)
        for grant in [SessionGrant.message(key), .account(bob)] {
            let (cookieKey, box) = grant.sealed()
            #expect(cookieKey.count == 43)
            #expect(SessionGrant.open(box, cookieKey: grant.sealed().cookieKey) == nil)
            #expect(SessionGrant.open(box, cookieKey: "not a key") == nil)
            switch SessionGrant.open(box, cookieKey: cookieKey) {
            case .message(let k)?:
                #expect(k.id == packed.id && k.index == 0)
                #expect(try read(store, k) == (try message(multipartMessage).bytes()))
            case .account(let a)?:
                #expect(a.address == "bob@example.net")
                #expect(try store.inbox(for: a, now: during).first?.state == .readable)
            case nil:
                Issue.record("the grant did not open with its own key")
            }
        }
    }

    @Test func aVersionOneStoreIsMigrated() throws {
        let dir = temporaryStoreDirectory()
        defer { cleanUp(dir) }
        // A store as version 1 left it: no account_wrap, no pending_account, no tokens.
        do {
            let store = try EscrowStore(location: dir)
            _ = store
        }
        let db = dir + "/" + EscrowStore.databaseName
        let sql = """
            ALTER TABLE recipients DROP COLUMN account_wrap; ALTER TABLE recipients DROP COLUMN pending_account;
            DROP TABLE account_tokens; PRAGMA user_version = 1;
            """
        let r = try runSQLite(db, sql)
        #expect(r == 0)
        let store = try EscrowStore(location: dir)
        try store.createAccount(address: "bob@example.net", password: "bob's password", parameters: fast)
        let packed = try pack(store)
        let bob = try store.signIn(address: "bob@example.net", password: "bob's password")
        #expect(try store.inbox(for: bob, now: during).map(\.id) == [packed.id])
        #expect(try store.issueResetToken(address: "bob@example.net", now: during) != nil)
        // A version 1 binary opened it meanwhile (it writes user_version = 1 each
        // time): the columns are there already, and the next open is not confused.
        #expect(try runSQLite(db, "PRAGMA user_version = 1;") == 0)
        let again = try EscrowStore(location: dir)
        #expect(try again.inbox(for: bob, now: during).map(\.id) == [packed.id])
    }

    func runSQLite(_ db: String, _ sql: String) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()", db, sql]
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }
}

@Suite struct RandomOctetsTests {
    @Test func tokensAreBase64urlOfFreshOctets() {
        let tokens = (0..<100).map { _ in RandomOctets.token(32) }
        #expect(Set(tokens).count == 100)
        for t in tokens {
            #expect(t.count == 43)
            #expect(t.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
            // The same octets as Foundation's base64, in the URL alphabet without padding.
            let standard = t.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "="
            #expect(Data(base64Encoded: standard)?.count == 32)
        }
        #expect(RandomOctets.make(16).count == 16)
        #expect(RandomOctets.token(16).count == 22)
    }
}
