#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLCommand
import SLEscrow
import SLMessage
import SLPolicy
import SLPostgres

/// sl-escrow without its argument parsing: the escrow store's administration
/// (list, status, retract, purge, receipts, accounts, verify) and `open`, which
/// gives a recipient (or an admin helping one) the original message at a terminal.
/// Secrets (links, answers, passwords) come from the terminal or from files, never
/// from the command line, where any user can read them in ps(1).
public struct EscrowTool {
    public var configurationPath: String?
    public var storeDirectory: String?

    public init() {}

    static let tool = "sl-escrow"

    func context() throws -> (EscrowContext, Configuration) {
        let configuration = try ConfigurationLocation.loadIfPresent(configurationPath) ?? Configuration()
        return (try EscrowContext(configuration.installation, source: configuration.source, storeDirectory: storeDirectory, tool: "sl-escrow"), configuration)
    }

    // MARK: reports

    public func list(json: Bool) throws {
        try Self.report(try context().0.store.list(), json: json,
                        heading: "ID                                CREATED (UTC)     EXPIRES (UTC)     STATE      OPENED  RECIPIENTS") { m in
            let opened = m.recipients.filter { $0.firstOpen != nil }.count
            return "\(m.id)  \(Self.short(m.created))  \(Self.short(m.expires))  \(Self.state(m).padding(toLength: 9, withPad: " ", startingAt: 0))  \(opened)/\(m.recipients.count)     \(m.recipients.map(\.address).joined(separator: ", "))"
        }
    }

    public func status(id: String, json: Bool) throws {
        let m = try context().0.store.status(id: id)
        var out = ""
        if json {
            out = try Self.json(m) + "\n"
        } else {
            out += "message   \(m.id)\nsender    \(m.sender)\ncreated   \(Self.short(m.created))\nexpires   \(Self.short(m.expires))\n"
            out += "state     \(Self.state(m))\nsize      \(m.size) octets\n"
            for r in m.recipients {
                out += "recipient \(r.index) \(r.address) (\(r.mode))"
                out += r.firstOpen.map { ": first opened \(Self.short($0)), last \(Self.short(r.lastOpen ?? $0))" } ?? ": not opened"
                if r.failedAttempts > 0 { out += ", \(r.failedAttempts) failed attempt\(r.failedAttempts == 1 ? "" : "s")" }
                if !r.replies.isEmpty {
                    out += ", replied " + r.replies.map { "\(Self.short($0.sent)) (\($0.size) bytes)" }.joined(separator: ", ")
                }
                if r.locked { out += ", LOCKED" }
                out += "\n"
            }
        }
        try FileDescriptorIO.writeAll(1, Array(out.utf8))
    }

    static func state(_ m: MessageStatus) -> String {
        if m.retracted != nil { return "retracted" }
        if m.purged || m.expires <= Date() { return "expired" }
        return "active"
    }

    /// "2026-11-29 09:12", UTC, for the tables (by hand, like the RFC 5322 date).
    static func short(_ d: Date) -> String {
        var t = time_t(d.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(format: "%04d-%02d-%02d %02d:%02d", 1900 + tm.tm_year, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min)
    }

    static func json<T: Encodable>(_ value: T) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .iso8601
        return String(decoding: try e.encode(value), as: UTF8.self)
    }

    // MARK: changes

    public func retract(id: String) throws {
        try context().0.store.retract(id: id, now: Date())
        Diagnostics.warn(Self.tool, "\(id) retracted: its content and keys are destroyed")
    }

    public func purge() throws {
        let n = try context().0.store.purge(now: Date())
        if Diagnostics.stderrIsTerminal { Diagnostics.warn(Self.tool, "\(n) expired message\(n == 1 ? "" : "s") purged") }
    }

    /// Read receipts as an mboxrd stream for sl-deliver: one message to the sender
    /// per recipient who opened a message, and one per tracked copy (open_tracking)
    /// whose image was fetched. A receipt is marked sent once the whole stream is
    /// written, so a failed write sends it again next time rather than never.
    /// Each receipt is claimed in the store before it is written, so runs on
    /// several machines at once send it once; if the output cannot be written,
    /// the claims are given back for the next run. (A crash between the claim and
    /// the write loses those receipts rather than sending them twice: a receipt
    /// is a courtesy, a duplicate a nuisance.)
    public func receipts() throws {
        let (ctx, configuration) = try context()
        let pending = try ctx.store.pendingReceipts().filter { try ctx.store.markReceiptSent(id: $0.id, index: $0.index) }
        let opens = try ctx.store.pendingOpenReceipts().filter { try ctx.store.markOpenReceiptSent($0) }
        guard !pending.isEmpty || !opens.isEmpty else { return }
        do {
            let staged = try StagedOutput()
            let writer = MboxWriter(sink: staged.sink)
            let from = configuration.installation.escrow.noticeFrom ?? "MAILER-DAEMON@\(ctx.hostname)"
            for r in pending where !r.sender.isEmpty {
                try writer.write(try ReadReceipt.message(for: r, from: from, date: Date()))
            }
            for r in opens where !r.copy.sender.isEmpty {
                try writer.write(try ReadReceipt.message(for: r.copy, from: from, date: Date()))
            }
            try staged.commit(to: 1)
        } catch {
            for r in pending { try? ctx.store.unmarkReceiptSent(id: r.id, index: r.index) }
            for r in opens { try? ctx.store.unmarkOpenReceiptSent(r) }
            throw error
        }
    }

    // MARK: open

    /// Where a secret comes from: a file, or the terminal.
    public enum SecretSource {
        case file(String)
        case terminal
    }

    /// Writes the original message to stdout once it is wholly decrypted and
    /// authenticated (staged first): a tampered store never yields half a message.
    public func open(link: SecretSource, answer: SecretSource?, password: SecretSource?, asSender id: String?) throws {
        let (ctx, _) = try context()
        let staged = try StagedOutput()
        let write: (ArraySlice<UInt8>) throws -> Void = { try staged.sink.write($0) }
        if let id {
            let pw = try Self.secret(password ?? .terminal, prompt: "Account password (not shown): ")
            try ctx.store.openAsSender(id: id, password: pw, now: Date(), output: write)
        } else {
            let text = try Self.secret(link, prompt: "Link from the notice: ", echo: true)
            guard let parsed = EscrowLink(parsing: text) else {
                throw UsageError("that is not an escrow link (expected https://.../ID/N#SECRET, as in the notice)")
            }
            // The link and the message's state first, with no answer yet (no attempt):
            // a forged link learns nothing, not even the question.
            let preview = try ctx.store.preview(id: parsed.id, index: parsed.index, linkSecret: parsed.secret, now: Date())
            switch preview.proof {
            case .login:
                let pw = try Self.secret(password ?? .terminal, prompt: "Escrow account password for \(preview.recipient) (not shown): ")
                try ctx.store.open(id: parsed.id, index: parsed.index, linkSecret: parsed.secret, password: pw, now: Date(), output: write)
            case .setPassword:
                throw EscrowError.accountNeeded(preview.recipient)
            case .question(let q):
                let a = try Self.secret(answer ?? .terminal, prompt: q.isEmpty ? "Answer (not shown): " : "\(q)\nAnswer (not shown): ")
                try ctx.store.open(id: parsed.id, index: parsed.index, linkSecret: parsed.secret, answer: a, now: Date(), output: write)
            }
        }
        try staged.commit(to: 1)
    }

    /// A secret from a file (its first line) or from the terminal without echo.
    static func secret(_ source: SecretSource, prompt: String, echo: Bool = false) throws -> String {
        switch source {
        case .file(let path):
            return try SecretInput.firstLine(path)
        case .terminal:
            guard let tty = Terminal() else {
                throw UsageError("no terminal to ask on; give the secret in a file (see sl-escrow(1))")
            }
            guard let s = tty.ask(prompt, echo: echo), !s.isEmpty else { throw UsageError("nothing entered") }
            return s
        }
    }

    // MARK: accounts

    public func addAccount(_ address: String, password: SecretSource?) throws {
        let (ctx, configuration) = try context()
        let pw: String
        if let password {
            pw = try Self.secret(password, prompt: "")
        } else {
            pw = try Self.secret(.terminal, prompt: "New password for \(address) (not shown): ")
            guard try Self.secret(.terminal, prompt: "\nAgain: ") == pw else { throw UsageError("the passwords differ") }
        }
        guard pw.count >= 8 else { throw UsageError("a password needs at least 8 characters") }
        let i = configuration.installation
        try ctx.store.createAccount(address: address, password: pw,
                                    parameters: try KDFParameters(opsLimit: i.escrow.kdfPasses, memoryLimit: i.escrow.kdfMemoryMiB << 20))
    }

    public func removeAccount(_ address: String) throws {
        try context().0.store.removeAccount(address: address)
    }

    public func changePassword(_ address: String, old: SecretSource?, new: SecretSource?) throws {
        let ctx = try context().0
        let o = try Self.secret(old ?? .terminal, prompt: "Current password for \(address) (not shown): ")
        let n = try Self.secret(new ?? .terminal, prompt: "\nNew password (not shown): ")
        guard n.count >= 8 else { throw UsageError("a password needs at least 8 characters") }
        try ctx.store.changePassword(address: address, old: o, new: n)
    }

    public func listAccounts(json: Bool) throws {
        let accounts = try context().0.store.accounts()
        var out = ""
        for a in accounts { out += json ? try Self.json(a) + "\n" : "\(a.address)  created \(Self.short(a.created))\n" }
        try FileDescriptorIO.writeAll(1, Array(out.utf8))
    }

    /// Exit 0 when the store is sound; each problem on stderr and 74 otherwise.
    public func verify() throws {
        let problems = try context().0.store.verify()
        for p in problems { Diagnostics.warn(Self.tool, p) }
        if !problems.isEmpty { throw EscrowStoreDamaged(description: "the store has \(problems.count) problem\(problems.count == 1 ? "" : "s")") }
    }
}

extension EscrowTool {
    /// The store's location from --store or sl.conf, without opening it.
    func location() throws -> (String, Configuration) {
        let configuration = try ConfigurationLocation.loadIfPresent(configurationPath) ?? Configuration()
        guard let location = storeDirectory ?? configuration.installation.effectiveEscrowStore else {
            throw ConfigurationError(configuration.source, 0, "no escrow store: set escrow_store or state_directory, or HOME")
        }
        return (location, configuration)
    }

    /// Creates or upgrades the escrow tables of a PostgreSQL store; the only thing
    /// that does (packers and portals refuse a missing or older schema).
    public func migrate() throws {
        let (location, _) = try location()
        let line: String
        if EscrowStore.isDatabase(location) {
            let (from, to) = try EscrowStore.migrate(uri: location)
            let shown = PostgresURI.redacted(location)
            line = from == to ? "\(shown): the escrow schema is at version \(to); nothing to do\n"
                : "\(shown): the escrow schema migrated from version \(from) to \(to)\n"
        } else {
            line = "\(location): a store directory makes its own tables; nothing to do\n"
        }
        try FileDescriptorIO.writeAll(1, Array(line.utf8))
    }

    /// Copies the store (usually a directory) into the empty PostgreSQL store at
    /// `uri`, whose schema `migrate` made; progress on stderr, a summary on stdout.
    public func copy(to uri: String) throws {
        guard EscrowStore.isDatabase(uri) else {
            throw ValidationFailure("--to takes a postgresql:// URI, not \"\(uri)\"")
        }
        let (context, _) = try context()
        let target = try EscrowStore(location: uri)
        let summary = try context.store.copy(to: target) { Diagnostics.warn(Self.tool, $0) }
        let problems = try target.verify()
        for p in problems { Diagnostics.warn(Self.tool, "after the copy: \(p)") }
        let rows = summary.rows.keys.sorted().map { "\($0) \(summary.rows[$0]!)" }.joined(separator: ", ")
        let line = "copied \(context.store.location) into \(target.location): \(rows); \(summary.contents) sealed contents (\(summary.contentBytes) bytes)\n"
        try FileDescriptorIO.writeAll(1, Array(line.utf8))
        if !problems.isEmpty { throw EscrowStoreDamaged(description: "the copy has \(problems.count) problem\(problems.count == 1 ? "" : "s")") }
    }
}

/// A command line that cannot work (64).
public struct ValidationFailure: SysexitReporting, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
    public var sysexit: Sysexit { .usage }
}

public struct EscrowStoreDamaged: SysexitReporting, CustomStringConvertible {
    public let description: String
    public var sysexit: Sysexit { .ioError }
}

