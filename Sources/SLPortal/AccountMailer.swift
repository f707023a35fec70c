import Foundation
import SLMessage

/// Hands account mail (password-reset and SecureSend verification links) to
/// sl-deliver, installed beside sl-portal, with the portal's configuration: it
/// leaves as escrow notices do, by the installation's relay or MX delivery.
struct AccountMailer: Sendable {
    let handover: Handover

    /// sl-deliver beside this executable; nil when it is not there.
    init?(configuration: String) {
        guard let deliver = Handover.beside("sl-deliver") else { return nil }
        handover = Handover(argv: [deliver, "--config", configuration])
    }

    func send(_ message: Message) async throws {
        try await handover.run(try message.bytes())
    }
}
