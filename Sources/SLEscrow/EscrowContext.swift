#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SLMessage
import SLPolicy

/// The pieces every escrow command needs from the configuration.
public struct EscrowContext {
    public let store: EscrowStore
    public let portal: String
    public let hostname: String
    private let directory: String
    private let pepper: SecretBytes?
    private let maximumAttempts: Int

    public init(_ installation: InstallationSettings, source: String, storeDirectory: String?, tool: String) throws {
        guard let directory = storeDirectory ?? installation.effectiveEscrowStore else {
            throw ConfigurationError(source, 0, "no escrow store: set escrow_store or state_directory, or HOME")
        }
        var pepper: SecretBytes? = nil
        if let path = installation.escrow.pepperFile {
            do { pepper = try Pepper.load(path: path) } catch {
                throw ConfigurationError(source, 0, "escrow_pepper_file: \(error)")
            }
        }
        // Not a configuration error: a busy or unwritable store is EscrowError.storage,
        // exit 75, so Postfix defers the message instead of bouncing it.
        if !EscrowStore.isDatabase(directory) {
            try StateOwner.check(directory, within: installation.stateDirectory, what: "the escrow store", tool: tool)
        }
        self.directory = directory
        self.pepper = pepper
        maximumAttempts = installation.escrow.maxAttempts
        store = try EscrowStore(location: directory, pepper: pepper, maximumAttempts: maximumAttempts)
        hostname = Self.hostname(installation)
        portal = Self.portal(installation, hostname: hostname)
    }

    public static func hostname(_ installation: InstallationSettings) -> String { installation.hostname ?? localHostName() }

    /// The portal address notices link to: escrow_url, else this host's /sl-escrow.
    public static func portal(_ installation: InstallationSettings, hostname: String) -> String {
        installation.escrow.url ?? "https://\(hostname)/sl-escrow"
    }

    /// One more connection to the same store, for another worker thread.
    public func anotherStore() throws -> EscrowStore {
        try EscrowStore(location: directory, pepper: pepper, maximumAttempts: maximumAttempts)
    }
}

