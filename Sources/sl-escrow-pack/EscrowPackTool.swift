#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLCommand
import SLEscrow
import SLMessage
import SLPolicy

/// sl-escrow-pack without its argument parsing.
///
/// Every message routed to escrow is sealed into the store and replaced by one
/// notice per recipient; every other message passes through byte for byte. The
/// answers come from where sl-classify found them (an address book, a default
/// question of the configuration, or a pending answer the sender typed), never
/// from the message. Nothing is written to stdout unless the whole stream
/// succeeded; sealed records of a failed run are never announced and expire.
public struct EscrowPackTool {
    public var configurationPath: String?
    public var storeDirectory: String?
    public var stream = StreamOptions()
    /// Seal nothing: notices with a placeholder link, so a dry run of the whole
    /// pipeline shows who would get one and changes nothing.
    public var dryRun = false

    public init() {}

    static let tool = "sl-escrow-pack"

    public func run() throws {
        let configuration = try ConfigurationLocation.loadIfPresent(configurationPath) ?? Configuration()
        let installation = configuration.installation
        let kdf: KDFParameters
        do {
            kdf = try KDFParameters(opsLimit: installation.escrow.kdfPasses, memoryLimit: installation.escrow.kdfMemoryMiB << 20)
        } catch {
            throw ConfigurationError(configuration.source, 0, "escrow_kdf_passes / escrow_kdf_memory: \(error)")
        }
        let templates: NoticeTemplates
        do {
            templates = try NoticeTemplates.load(subject: installation.escrow.noticeSubject, textFile: installation.escrow.noticeText,
                                                 htmlFile: installation.escrow.noticeHTML)
        } catch {
            throw ConfigurationError(configuration.source, 0, "\(error)")
        }
        // Messages are packed on every core (at most four): Argon2id is most of the
        // work when a bulk run has many different recipients. Each worker has its
        // own store connection; each derivation takes escrow_kdf_memory while it runs.
        // A dry run opens no store: it seals nothing, derives no key and uses up no
        // pending answer; its notices carry a placeholder link.
        let workers = dryRun ? 1 : max(1, min(4, ProcessInfo.processInfo.activeProcessorCount))
        var stores: [EscrowStore] = []
        if !dryRun {
            let context = try EscrowContext(installation, source: configuration.source, storeDirectory: storeDirectory, tool: Self.tool)
            stores = [context.store]
            for _ in 1..<workers { stores.append(try context.anotherStore()) }
        }
        let hostname = EscrowContext.hostname(installation)
        let packer = Packer(configuration: configuration, stores: stores, kdf: kdf, templates: templates,
                            portal: EscrowContext.portal(installation, hostname: hostname), hostname: hostname,
                            warn: { Diagnostics.warn(Self.tool, $0) })

        let filter = try StreamFilter(tool: Self.tool, options: stream)
        filter.bareOutputForBareInput = true       // alone on one bare message: no mbox framing
        // One record per sealed copy's recipient, written before the notice goes on.
        let audit = dryRun ? nil : AuditLog(installation.effectiveAuditLog, tool: Self.tool)
        let records = AuditLines()
        let recording = audit != nil
        if let audit {
            filter.beforeOutput = {
                let now = audit.timestamp(Date())
                for var r in records.take() {
                    r["time"] = now
                    try audit.record(r)
                }
                try audit.commit()
            }
        }
        try filter.process(workers: workers) { message, worker in
            guard let envelope = try Envelope.read(from: message.header), envelope.method == .escrow,
                  !envelope.isEscrowNotice else { return [message] }
            let notices = try packer.pack(message, envelope, worker: worker, now: Date())
            if recording {
                for n in notices {
                    guard let routing = try Envelope.read(from: n.header), let id = routing.escrowID else { continue }
                    for r in routing.recipients {
                        var fields: [String: Any] = ["tool": Self.tool, "recipient": r.address, "outcome": "sealed",
                                                     "escrow_id": id, "sender": routing.sender]
                        if let original = routing.originalMessageID { fields["message_id"] = original }
                        records.add(fields)
                    }
                }
            }
            return notices
        }
        try filter.commit()
        // The notices are out: the answers the sender typed are no longer needed.
        if !dryRun { for path in packer.consumedPendingAnswers { unlink(path) } }
    }
}

/// Audit records made on worker threads, written by the writing thread.
final class AuditLines: @unchecked Sendable {
    private var lines: [[String: Any]] = []
    private let lock = NSLock()
    func add(_ r: [String: Any]) { lock.withLock { lines.append(r) } }
    func take() -> [[String: Any]] { lock.withLock { defer { lines = [] }; return lines } }
}
