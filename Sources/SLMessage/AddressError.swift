/// Why an address, address list or domain name was refused. The message never quotes
/// the offending input at length: it ends up in logs and bounce reports, and the input
/// is attacker-controlled.
public struct AddressError: Error, Equatable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { "invalid address: \(message)" }

    /// A byte named for a message: printable ASCII in quotes, anything else in hex.
    static func describe(_ b: UInt8) -> String {
        b > 0x20 && b < 0x7F ? "\"\(Character(Unicode.Scalar(b)))\"" : "byte 0x" + String(b, radix: 16, uppercase: true)
    }

    /// A scalar named for a message, in the same way.
    static func describe(_ s: Unicode.Scalar) -> String {
        s.value > 0x20 && s.value < 0x7F ? "\"\(Character(s))\"" : "U+" + String(s.value, radix: 16, uppercase: true)
    }
}
