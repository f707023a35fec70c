import SLMessage

// The exit each transport error means (sysexits(3)); see SysexitReporting.
// Network trouble is temporary; a table or trust store that cannot be used is
// configuration.

extension TransportTableError: SysexitReporting { public var sysexit: Sysexit { .config } }
extension TransportTable.TableLineError: SysexitReporting { public var sysexit: Sysexit { .config } }
extension TLSSetupError: SysexitReporting { public var sysexit: Sysexit { .config } }
extension DNSError: SysexitReporting { public var sysexit: Sysexit { .tempFail } }
extension TransportError: SysexitReporting { public var sysexit: Sysexit { .tempFail } }
extension STARTTLSRefused: SysexitReporting { public var sysexit: Sysexit { .tempFail } }
/// The domain accepts no mail (RFC 7505): no later try will change that.
extension NullMXError: SysexitReporting { public var sysexit: Sysexit { .unavailable } }
