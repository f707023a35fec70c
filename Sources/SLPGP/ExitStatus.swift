import SLMessage

// The exit each PGP error means (sysexits(3)); see SysexitReporting.

/// gpg failed or refused: may work on the next try (an agent, a lock, a disk).
extension PGPError: SysexitReporting { public var sysexit: Sysexit { .tempFail } }
/// No usable key: the keyring or the book must change first.
extension RecipientKeyError: SysexitReporting { public var sysexit: Sysexit { .unavailable } }
extension PGPHomeError: SysexitReporting { public var sysexit: Sysexit { .config } }
/// The key data itself is unusable for the address: it must change.
extension KeyDataError: SysexitReporting { public var sysexit: Sysexit { .dataError } }
