/// Content-Transfer-Encoding decoders shared by RFC 2047 words and MIME bodies.
public enum TransferDecoding {
    /// Undoes %XX escapes (RFC 3986 2.1; RFC 2231 values; RFC 2397 data: URIs). With
    /// `strict`, a `%` not followed by two hex digits fails the decode (nil); otherwise
    /// it is kept as a literal `%`.
    public static func percentDecoded<C: Collection>(_ input: C, strict: Bool) -> Bytes? where C.Element == UInt8 {
        let v = Array(input)
        var out = Bytes()
        out.reserveCapacity(v.count)
        var i = 0
        while i < v.count {
            if v[i] == UInt8(ascii: "%") {
                if i + 2 < v.count, let hi = hexValue(v[i + 1]), let lo = hexValue(v[i + 2]) {
                    out.append(hi << 4 | lo)
                    i += 3
                    continue
                }
                if strict { return nil }
            }
            out.append(v[i])
            i += 1
        }
        return out
    }

    public static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }

    private static let base64Table: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            t[Int(c)] = UInt8(i)
        }
        return t
    }()

    /// Decodes base64. With `strict`, any character outside the alphabet (other than
    /// trailing padding) fails the decode, as RFC 2047 words require; otherwise such
    /// characters (line breaks, stray junk) are skipped the way RFC 2045 6.8 says.
    public static func base64<C: Collection>(_ input: C, strict: Bool = false) -> Bytes? where C.Element == UInt8 {
        var out = Bytes()
        out.reserveCapacity(input.count / 4 * 3)
        var acc: UInt32 = 0
        var n = 0
        var sawPad = false
        for c in input {
            if c == UInt8(ascii: "=") { sawPad = true; continue }
            let v = base64Table[Int(c)]
            if v == 0xFF || sawPad {
                if strict { return nil }
                continue
            }
            acc = acc << 6 | UInt32(v)
            n += 1
            if n == 4 {
                out.append(UInt8(truncatingIfNeeded: acc >> 16))
                out.append(UInt8(truncatingIfNeeded: acc >> 8))
                out.append(UInt8(truncatingIfNeeded: acc))
                acc = 0; n = 0
            }
        }
        switch n {
        case 0: break
        case 2: out.append(UInt8(truncatingIfNeeded: acc >> 4))
        case 3:
            out.append(UInt8(truncatingIfNeeded: acc >> 10))
            out.append(UInt8(truncatingIfNeeded: acc >> 2))
        default: if strict { return nil }
        }
        return out
    }

    /// Decodes quoted-printable (RFC 2045 6.7) leniently: trailing white space on a line
    /// is dropped (rule 3: transports add it), `=` at the end of a line is a soft line
    /// break, `=XX` (either case of hex) is a byte, and a `=` that starts neither is kept
    /// literally, as 6.7 note (2) recommends. Hard line breaks are kept as written (CRLF
    /// or LF); a bare CR is ordinary data.
    public static func quotedPrintable<C: Collection>(_ input: C) -> Bytes where C.Element == UInt8 {
        let p = Array(input)
        var out = Bytes()
        out.reserveCapacity(p.count)
        var i = 0
        while i < p.count {
            let lf = p[i...].firstIndex(of: ASCII.lf) ?? p.count
            var contentEnd = lf
            if lf < p.count, lf > i, p[lf - 1] == ASCII.cr { contentEnd = lf - 1 }
            var e = contentEnd
            while e > i && ASCII.isWSP(p[e - 1]) { e -= 1 }
            var soft = false
            if e > i && p[e - 1] == UInt8(ascii: "=") { soft = true; e -= 1 }
            var j = i
            while j < e {
                let b = p[j]
                if b == UInt8(ascii: "="), e - j >= 3,
                   let hi = hexValue(p[j + 1]), let lo = hexValue(p[j + 2]) {
                    out.append(hi << 4 | lo)
                    j += 3
                } else {
                    out.append(b)
                    j += 1
                }
            }
            if !soft && lf < p.count { out += p[contentEnd...lf] }
            i = lf + 1
        }
        return out
    }
}
