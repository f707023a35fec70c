import SLMessage

// The exit each S/MIME error means (sysexits(3)); see SysexitReporting.

/// No usable certificate: the certificate, the book or the trust store must change first.
extension RecipientCertificateError: SysexitReporting { public var sysexit: Sysexit { .unavailable } }
/// The message is not signed as it must be, or not by the contact: it must change.
extension SignedMessageError: SysexitReporting { public var sysexit: Sysexit { .dataError } }
