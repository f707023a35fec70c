// Byte-level helpers shared by the parsers. Mail is bytes, not text: RFC 5322 fields
// are ASCII (UTF-8 since RFC 6532) and bodies may be 8-bit or binary, so every parser
// here works on [UInt8] and only turns the parts it interprets into String.

public typealias Bytes = [UInt8]

enum ASCII {
    /// ASCII lowercase of one octet; others unchanged.
    @inline(__always) static func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }
    static let lf: UInt8 = 0x0A
    static let cr: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A
    static let greaterThan: UInt8 = 0x3E
    static let nul: UInt8 = 0x00

    static func isWSP(_ b: UInt8) -> Bool { b == space || b == tab }

    /// RFC 5322 ftext: printable US-ASCII except colon.
    static func isFieldNameByte(_ b: UInt8) -> Bool { b >= 33 && b <= 126 && b != colon }
}

extension Collection where Element == UInt8 {
    /// True when the bytes begin with the ASCII string `prefix` (case-sensitive).
    @inlinable
    public func hasBytePrefix(_ prefix: StaticString) -> Bool {
        let n = prefix.utf8CodeUnitCount
        guard count >= n else { return false }
        return prefix.withUTF8Buffer { p in
            var i = startIndex
            for k in 0..<n {
                if self[i] != p[k] { return false }
                i = index(after: i)
            }
            return true
        }
    }

}

extension BidirectionalCollection where Element == UInt8 {
    /// The length of the line terminator at the end of these bytes: 2 for CRLF, 1 for
    /// LF, 0 for none.
    public var lineTerminatorLength: Int {
        guard let last = self.last, last == 0x0A else { return 0 }
        return self.dropLast().last == 0x0D ? 2 : 1
    }
}

extension String {
    /// Decodes bytes as UTF-8, replacing invalid sequences (RFC 6532 allows UTF-8 in
    /// header fields; anything else in a header is a sender's bug we tolerate).
    public init<C: Collection>(lenientUTF8 bytes: C) where C.Element == UInt8 {
        self = String(decoding: bytes, as: UTF8.self)
    }

    public var bytes: Bytes { Array(utf8) }
}
