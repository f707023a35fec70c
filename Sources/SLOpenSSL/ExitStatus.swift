import SLMessage

// The exit each OpenSSL error means (sysexits(3)); see SysexitReporting.

/// OpenSSL failed: may work on the next try.
extension OpenSSLError: SysexitReporting { public var sysexit: Sysexit { .tempFail } }
