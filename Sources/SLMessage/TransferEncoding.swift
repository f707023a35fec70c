// RFC 2045 section 6: Content-Transfer-Encoding values, and the encoders used when we
// write new MIME entities. Decoders live in TransferDecoding.swift.

public enum TransferEncoding: String, Sendable, CaseIterable {
    case sevenBit = "7bit"
    case eightBit = "8bit"
    case binary
    case base64
    case quotedPrintable = "quoted-printable"

    /// Reads a field value such as `Base64` or `quoted-printable (comment)`. Nil for an
    /// encoding we do not know (x-uuencode and friends); an empty value is 7bit.
    public init?(headerValue: String) {
        self.init(rawValue: TransferEncoding.normalise(headerValue))
    }

    /// The first token of a Content-Transfer-Encoding value, lowercased; "7bit" when
    /// there is none (RFC 2045 6.1 default).
    static func normalise(_ value: String) -> String {
        let head = MIMEParameters.parse(value).head
        return head.isEmpty ? "7bit" : head.lowercased()
    }

    /// True for the encodings that leave bytes as they are (RFC 2045 6.2).
    public var isIdentity: Bool { self == .sevenBit || self == .eightBit || self == .binary }

    /// Undoes this encoding, leniently (see `TransferDecoding`).
    public func decode<C: Collection>(_ bytes: C) -> Bytes where C.Element == UInt8 {
        switch self {
        case .sevenBit, .eightBit, .binary: return Array(bytes)
        case .base64: return TransferDecoding.base64(bytes) ?? []
        case .quotedPrintable: return TransferDecoding.quotedPrintable(bytes)
        }
    }

    // MARK: Encoders

    private static let base64Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static let crlf: Bytes = [ASCII.cr, ASCII.lf]

    /// Base64 (RFC 2045 6.8) in lines of 76 characters, each ended by CRLF (the last
    /// one too, so the encoded body can be followed directly by a boundary or the end
    /// of a message). Empty input gives empty output.
    public static func encodeBase64<C: Collection>(_ input: C) -> Bytes where C.Element == UInt8 {
        let bytes = Array(input)
        var out = Bytes()
        out.reserveCapacity((bytes.count + 2) / 3 * 4 + (bytes.count / 57 + 1) * 2)
        var lineLength = 0
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            let b0 = UInt32(bytes[i])
            let b1 = n > 1 ? UInt32(bytes[i + 1]) : 0
            let b2 = n > 2 ? UInt32(bytes[i + 2]) : 0
            let v = b0 << 16 | b1 << 8 | b2
            out.append(base64Alphabet[Int(v >> 18 & 0x3F)])
            out.append(base64Alphabet[Int(v >> 12 & 0x3F)])
            out.append(n > 1 ? base64Alphabet[Int(v >> 6 & 0x3F)] : UInt8(ascii: "="))
            out.append(n > 2 ? base64Alphabet[Int(v & 0x3F)] : UInt8(ascii: "="))
            i += 3
            lineLength += 4
            if lineLength == 76 { out += crlf; lineLength = 0 }
        }
        if lineLength > 0 { out += crlf }
        return out
    }

    /// Quoted-printable (RFC 2045 6.7) with lines of at most 76 characters and CRLF.
    ///
    /// In `textMode` the input is text: each LF or CRLF becomes a hard line break (CRLF),
    /// so LF-only text comes back as CRLF text. Otherwise every CR and LF is encoded
    /// (=0D, =0A) and decoding gives back exactly the input bytes. Either way white space
    /// before a line break or the end is encoded, `=` and non-printables are encoded, and
    /// "From " at the start of a line is written "=46rom " so mbox transports cannot
    /// mangle it. No line break is added at the end.
    public static func encodeQuotedPrintable<C: Collection>(_ input: C, textMode: Bool = true) -> Bytes where C.Element == UInt8 {
        let bytes = Array(input)
        var out = Bytes()
        out.reserveCapacity(bytes.count * 11 / 10 + 16)
        if !textMode {
            encodeQPLine(bytes[...], into: &out)
            return out
        }
        var start = 0
        while start <= bytes.count {
            guard let lf = bytes[start...].firstIndex(of: ASCII.lf) else {
                encodeQPLine(bytes[start...], into: &out)
                break
            }
            let end = lf > start && bytes[lf - 1] == ASCII.cr ? lf - 1 : lf
            encodeQPLine(bytes[start..<end], into: &out)
            out += crlf
            start = lf + 1
        }
        return out
    }

    /// Encodes one line of content (no line break in it, or binary mode), inserting soft
    /// line breaks so no output line exceeds 76 characters including the `=`.
    private static func encodeQPLine(_ line: ArraySlice<UInt8>, into out: inout Bytes) {
        let hex = Array("0123456789ABCDEF".utf8)
        var lineLength = 0
        var i = line.startIndex
        while i < line.endIndex {
            let b = line[i]
            let isLast = i == line.endIndex - 1
            let literal = (b >= 33 && b <= 126 && b != UInt8(ascii: "="))
                || (ASCII.isWSP(b) && !isLast)
            var width = literal ? 1 : 3
            // Room for this character, plus a soft-break `=` unless it ends the line.
            if lineLength + width + (isLast ? 0 : 1) > 76 {
                out += [UInt8(ascii: "=")] + crlf
                lineLength = 0
            }
            let from = lineLength == 0 && b == UInt8(ascii: "F") && line[i...].hasBytePrefix("From ")
            if literal && !from {
                out.append(b)
            } else {
                width = 3
                out += [UInt8(ascii: "="), hex[Int(b >> 4)], hex[Int(b & 0x0F)]]
            }
            lineLength += width
            i += 1
        }
    }
}
