import SLMessage

// The exit each policy error means (sysexits(3)); see SysexitReporting.

extension ConfigurationError: SysexitReporting { public var sysexit: Sysexit { .config } }
extension AddressBookError: SysexitReporting { public var sysexit: Sysexit { .config } }
/// A card that does not parse is a broken address book: configuration.
extension VCardError: SysexitReporting { public var sysexit: Sysexit { .config } }
/// Key data in a card that is not OpenPGP: the address book again.
extension KeyMaterialError: SysexitReporting { public var sysexit: Sysexit { .config } }
/// No secure method and no one to report to.
extension PolicyRefusal: SysexitReporting { public var sysexit: Sysexit { .unavailable } }
