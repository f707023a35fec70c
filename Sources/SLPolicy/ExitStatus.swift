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
/// A book not changed: the card exists (73), no card has the address (67), the
/// book cannot be written (73) or locked (75).
extension AddressBookEditError: SysexitReporting {
    public var sysexit: Sysexit {
        switch kind {
        case .exists, .cannotWrite: return .cantCreate
        case .notFound: return .noUser
        case .cannotLock: return .tempFail
        }
    }
}
