import SLMessage

// The exit each escrow error means (sysexits(3)); see SysexitReporting.

extension EscrowError: SysexitReporting {
    public var sysexit: Sysexit {
        switch self {
        case .notFound: return .noInput
        case .retracted, .expired, .lockedOut, .wrongLink, .wrongAnswer, .wrongPassword, .sealedForEarlierPassword,
             .linkNeeded, .wrongToken, .replyLimit, .dailyLimit: return .noPermission
        case .noAccount, .accountNeeded: return .noUser
        case .accountExists: return .cantCreate
        case .weakKDF: return .config
        case .corrupt: return .dataError
        // busy, not writable: the caller keeps the message (Postfix would bounce on 78)
        case .storage: return .tempFail
        }
    }
}
