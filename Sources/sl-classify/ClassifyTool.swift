#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLCommand
import SLDelivery
import SLEscrow
import SLMessage
import SLPolicy
import SLTransport

/// sl-classify without its argument parsing: what the executable calls.
public struct ClassifyTool {
    public enum Report { case none, text, json }

    public var configurationPath: String?
    public var envelope: EnvelopeOptions
    public var report: Report = .none
    public var ask = true
    public var stream = StreamOptions()
    /// The routed stream, but no audit records, TLS cache writes or prompts.
    public var dryRun = false

    public init(configurationPath: String?, envelope: EnvelopeOptions) {
        self.configurationPath = configurationPath
        self.envelope = envelope
    }

    static let tool = "sl-classify"

    /// The addresses with an escrow login account in the store, if there is a
    /// store. A store that exists but cannot be read stops the run (75): guessing
    /// "no account" could send a login recipient something weaker.
    static func storeAccounts(_ installation: InstallationSettings, source: String) throws -> Set<String> {
        guard let directory = installation.effectiveEscrowStore,
              EscrowStore.isDatabase(directory)
                || FileManager.default.fileExists(atPath: directory + "/" + EscrowStore.databaseName) else { return [] }
        do {
            return Set(try EscrowStore(location: directory).accounts().map { $0.address.lowercased() })
        } catch {
            throw MessageError.io("cannot read the escrow accounts in \(directory): \(error)")
        }
    }

    /// Classifies stdin. With a report, prints the decisions instead of the stream and
    /// changes nothing (no audit records, no prompt).
    public func run() throws {
        let configuration = try ConfigurationLocation.load(configurationPath)
        let prompt: (any SenderPrompt)? = (ask && report == .none && !dryRun) ? TerminalPrompt(tool: Self.tool) : nil
        let installation = configuration.installation
        // A report or a dry run changes nothing: live probes still answer, but their
        // verdicts are not written to the TLS cache.
        let changesNothing = dryRun || report != .none
        let live = installation.transport.tlsProbe
            ? LiveTLSCapability(installation: installation, source: configuration.source, recordInCache: !changesNothing,
                                warn: { Diagnostics.warn(Self.tool, $0) })
            : nil
        let classifier = try Classifier(configuration: configuration, options: envelope, prompt: prompt,
                                        hostname: installation.hostname ?? localHostName(), liveTLS: live,
                                        storeAccounts: try Self.storeAccounts(installation, source: configuration.source))
        let audit = changesNothing ? nil : AuditLog(configuration.installation.effectiveAuditLog, tool: Self.tool)
        // Messages classified before (Message-ID, size, recipient), so that a retry
        // (Postfix deferred the pipeline and feeds the message again) says so in
        // its audit record instead of looking like a second message.
        let days = installation.delivery.recordDays
        let classified = audit == nil || days <= 0 ? nil : installation.effectiveStateDirectory.flatMap { state in
            try? FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            return try? DeliveryRecord(path: state + "/classified", window: days * 86_400, now: Date().timeIntervalSince1970)
        }
        var explained: [[String: Any]] = []
        let tracker = changesNothing ? nil : OpenTracker(configuration: configuration)
        let filter = try StreamFilter(tool: Self.tool, options: stream)
        filter.checksStreamLength = false          // mail from outside; its X-SL-* fields go
        // A stream passes each message on as it is classified: its records first.
        if let audit { filter.beforeOutput = { try audit.commit() } }
        try filter.process { message in
            let result = try classifier.classify(message)
            let now = audit?.timestamp(Date())
            let size = message.header.bytes.count + message.body.count
            for d in result.decisions {
                var r: [String: Any] = [
                    "recipient": d.recipient.addrSpec, "method": d.method.rawValue, "reason": d.reason,
                    "step": d.step, "sender": result.sender, "message": message.index,
                ]
                if let id = result.messageID {
                    r["message_id"] = id
                    if let classified, report == .none {
                        if classified.contains(messageID: id, size: size, recipient: d.recipient.addrSpec) { r["retry"] = true }
                        classified.record(messageID: id, size: size, recipient: d.recipient.addrSpec, now: Date().timeIntervalSince1970)
                    }
                }
                if report != .none {
                    explained.append(r)
                } else if let audit, let now {
                    r["time"] = now
                    r["tool"] = Self.tool
                    r.removeValue(forKey: "message")
                    try audit.record(r)
                }
            }
            guard report == .none else { return [] }
            return try tracker?.copies(of: result, account: envelope.account, index: message.index) ?? result.output
        }
        switch report {
        case .none:
            // Audit first: if the log cannot be written, nothing has left yet and the
            // caller retries; the other order could pass a message on unrecorded.
            try audit?.commit()
            classified?.sync()
            try filter.commit()
        case .json:
            let data = try JSONSerialization.data(withJSONObject: explained, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
            try FileDescriptorIO.writeAll(1, Array(data) + [0x0A])
            try filter.reportRejections()
        case .text:
            try FileDescriptorIO.writeAll(1, Array(Self.explanation(explained).utf8))
            try filter.reportRejections()
        }
    }

    static func explanation(_ rows: [[String: Any]]) -> String {
        var out = ""
        var lastMessage = -1
        for r in rows {
            let m = r["message"] as? Int ?? 0
            if m != lastMessage {
                out += "message \(m)"
                if let id = r["message_id"] as? String { out += " \(id)" }
                let sender = r["sender"] as? String ?? ""
                out += " from \(sender.isEmpty ? "<>" : sender)\n"
                lastMessage = m
            }
            let recipient = r["recipient"] as? String ?? ""
            let method = r["method"] as? String ?? ""
            out += "  \(recipient.padding(toLength: max(28, recipient.count), withPad: " ", startingAt: 0)) "
            out += "\(method.padding(toLength: 8, withPad: " ", startingAt: 0)) step \(r["step"] as? Int ?? 0): \(r["reason"] as? String ?? "")\n"
        }
        return out
    }
}
