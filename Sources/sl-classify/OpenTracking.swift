import Foundation
import SLCommand
import SLEscrow
import SLMessage
import SLPolicy

/// open_tracking: a copy sent by TLS, PGP or S/MIME whose body has an HTML text
/// gets an image on the portal, `escrow_url/t/TOKEN`, with a token of its own,
/// recorded in the escrow store; the portal notes when it is fetched, and
/// `sl-escrow receipts` tells the sender.
///
/// Here, in sl-classify: it has just chosen each copy's method, it knows the
/// sender's settings, it reads the store already (for login accounts), and the
/// image must be in place before sl-encrypt-pgp and sl-encrypt-smime run, so that
/// for PGP and S/MIME it travels inside the ciphertext. One token per copy, not per
/// recipient: a copy is one message to all its recipients.
///
/// Tracking is for the sender's curiosity, never a condition of delivery: when the
/// store cannot be opened or written, the copy goes untracked with a warning on
/// stderr instead of failing or delaying the mail. The store's rows are written
/// before the stream is: a run that fails later leaves rows no image points to,
/// which are never fetched and so never reported.
final class OpenTracker {
    static let methods: Set<DeliveryMethod> = [.tls, .pgp, .smime]

    let configuration: Configuration
    /// The store, opened at the first copy that needs it, or why it cannot be.
    private var context: Result<EscrowContext, any Error>?

    init(configuration: Configuration) { self.configuration = configuration }

    /// The copies of one classified message, tracked where the sender's settings
    /// ask for it.
    func copies(of result: ClassifiedMessage, account: String?, index: Int) throws -> [Message] {
        guard try configuration.settings(forSender: result.sender, account: account).openTracking,
              let first = result.output.first else { return result.output }
        // Every copy has the body of the message: the place for the image is found
        // once (a pass over the whole body), the image itself goes into each copy.
        guard let site = try RemoteImage.site(in: first) else { return result.output }
        return try result.output.map { try track($0, at: site, messageID: result.messageID, index: index) }
    }

    private func track(_ copy: Message, at site: HTMLTextPart, messageID: String?, index: Int) throws -> Message {
        // Mail from the null sender is not tracked: no receipt could reach anyone.
        guard let envelope = try Envelope.read(from: copy.header), Self.methods.contains(envelope.method),
              !envelope.sender.isEmpty else { return copy }
        let recipients = envelope.recipients.map(\.address)
        let url: String
        do {
            let context = try store()
            let token = try context.store.track(sender: envelope.sender, recipients: recipients, messageID: messageID,
                                                method: envelope.method.rawValue, created: Date())
            url = context.portal + "/t/" + token
        } catch {
            Diagnostics.warn(ClassifyTool.tool, "message \(index): the copy to \(recipients.joined(separator: ", ")) goes untracked: \(error)")
            return copy
        }
        return try RemoteImage.inserting(url, at: site, into: copy)
    }

    private func store() throws -> EscrowContext {
        if context == nil {
            context = Result {
                try EscrowContext(configuration.installation, source: configuration.source, storeDirectory: nil, tool: ClassifyTool.tool)
            }
        }
        return try context!.get()
    }
}
