import SLMessage

/// Why sl-contacts did not change the book, in one line that says what to do, with
/// the sysexits code it means.
public struct ContactsError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A mistake on the command line (64).
        case usage
        /// A file named on the command line cannot be read (66).
        case noInput
        /// The data given is not what it must be: no key for the address, a bad signature (65).
        case data
        /// The web key directory has no key for the address (69).
        case unavailable
        /// The network or the server failed: may work later (75).
        case temporary
    }
    public let kind: Kind
    public let description: String
    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

extension ContactsError: SysexitReporting {
    public var sysexit: Sysexit {
        switch kind {
        case .usage: return .usage
        case .noInput: return .noInput
        case .data: return .dataError
        case .unavailable: return .unavailable
        case .temporary: return .tempFail
        }
    }
}
