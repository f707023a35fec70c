import Foundation

// Internationalised domain names. A domain is compared, looked up in DNS and matched
// against configuration in its ASCII form (A-labels, `xn--...`), so `bücher.example`
// and `xn--bcher-kva.example` are the same domain to every policy decision.
//
// Simplification, on purpose: this is not full UTS #46 processing. There are no
// mapping tables. A label is mapped by Unicode lowercasing and NFC only, and a label's
// code points are checked against a conservative rule derived from IDNA2008's general
// categories (letters, combining marks, decimal digits, ASCII hyphen) instead of the
// IDNA2008 derived-property and contextual-rule tables. So some valid but unusual
// labels are refused (ZWJ/ZWNJ, which need CONTEXTJ rules; symbols that UTS #46 would
// map), and no label that contains spaces, controls, punctuation or format characters
// is ever accepted. Refusing too much is the safe direction for a mail filter.

/// Domain names to their ASCII form, and back for display. Errors are `AddressError`,
/// so address callers see one error type.
public enum IDNA {
    /// Label separators UTS #46 maps to ".": full stop, ideographic full stop,
    /// fullwidth full stop, halfwidth ideographic full stop.
    static let labelSeparators: Set<Unicode.Scalar> = ["\u{2E}", "\u{3002}", "\u{FF0E}", "\u{FF61}"]

    /// The ASCII form of a domain name: every label lowercased, non-ASCII labels
    /// NFC-normalised and encoded as `xn--` A-labels. Throws for empty labels, labels
    /// over 63 octets, characters that are not letters/digits/hyphen, or a malformed
    /// existing `xn--` label. A trailing root dot is refused (not valid in mail).
    public static func toASCII(_ domain: String) throws -> String {
        guard !domain.isEmpty else { throw AddressError("empty domain") }
        var labels: [String] = []
        var current = String.UnicodeScalarView()
        for s in domain.unicodeScalars {
            if labelSeparators.contains(s) {
                labels.append(try labelToASCII(String(current)))
                current = String.UnicodeScalarView()
            } else {
                current.append(s)
            }
        }
        labels.append(try labelToASCII(String(current)))
        let out = labels.joined(separator: ".")
        // RFC 1035: 255 octets on the wire, 253 as text without the root dot.
        guard out.utf8.count <= 253 else { throw AddressError("domain is longer than 253 octets") }
        return out
    }

    /// The Unicode form of a domain for display: `xn--` labels decoded where they decode,
    /// everything else left as it was. Never throws; display only, never for comparison.
    public static func toUnicode(_ domain: String) -> String {
        domain.split(separator: ".", omittingEmptySubsequences: false).map { label -> String in
            let lower = label.lowercased()
            guard lower.hasPrefix("xn--"), let u = Punycode.decode(String(lower.dropFirst(4))),
                  !u.unicodeScalars.allSatisfy({ $0.isASCII }) else { return String(label) }
            return u
        }.joined(separator: ".")
    }

    /// One label to its ASCII form.
    static func labelToASCII(_ label: String) throws -> String {
        guard !label.isEmpty else { throw AddressError("domain has an empty label") }
        if label.utf8.allSatisfy({ $0 < 0x80 }) {
            let lower = label.lowercased()
            try checkLDH(lower)
            if lower.hasPrefix("xn--") {
                // An A-label given as such must decode, or it is not a domain anyone owns.
                guard let u = Punycode.decode(String(lower.dropFirst(4))), !u.isEmpty,
                      !u.unicodeScalars.allSatisfy({ $0.isASCII }) else {
                    throw AddressError("domain label \"\(lower)\" is not valid Punycode")
                }
                // And (RFC 5891 5.4) its U-label must be one this code accepts, and encode
                // back to the same A-label: otherwise a label refused in Unicode (symbols,
                // uppercase, not NFC) would get in spelt as Punycode, and the two forms
                // of one name would not map to each other.
                guard (try? unicodeLabelToASCII(u)) == lower else {
                    throw AddressError("domain label \"\(lower)\" is not a valid A-label")
                }
            }
            return lower
        }
        return try unicodeLabelToASCII(label)
    }

    /// A label with non-ASCII characters to its A-label (or, when lowercasing maps it to
    /// ASCII, such as the Kelvin sign to "k", to that ASCII label).
    static func unicodeLabelToASCII(_ label: String) throws -> String {
        // Lowercase before NFC: case mapping can leave a decomposed sequence.
        let mapped = label.lowercased().precomposedStringWithCanonicalMapping
        // Punycode of an all-ASCII label ("xn--k-") is no name anyone owns.
        if mapped.utf8.allSatisfy({ $0 < 0x80 }) { return try labelToASCII(mapped) }
        let scalars = Array(mapped.unicodeScalars)
        guard let first = scalars.first else { throw AddressError("domain has an empty label") }
        if first.properties.generalCategory.isMark {
            throw AddressError("domain label begins with a combining mark")
        }
        for s in scalars where !isAllowedInLabel(s) {
            throw AddressError("domain contains \(AddressError.describe(s)), not allowed in a domain name")
        }
        if scalars.first == "-" || scalars.last == "-" {
            throw AddressError("domain label begins or ends with a hyphen")
        }
        guard let encoded = Punycode.encode(scalars) else {
            throw AddressError("domain label cannot be Punycode-encoded")
        }
        let aLabel = "xn--" + encoded
        guard aLabel.utf8.count <= 63 else { throw AddressError("domain label is longer than 63 octets in ASCII form") }
        return aLabel
    }

    /// RFC 1123 host name label: letters, digits, hyphen; 1 to 63 octets; no hyphen at
    /// either end. `label` is already lowercased ASCII.
    static func checkLDH(_ label: String) throws {
        let u = Array(label.utf8)
        guard !u.isEmpty else { throw AddressError("domain has an empty label") }
        guard u.count <= 63 else { throw AddressError("domain label is longer than 63 octets") }
        for b in u where !isLDH(b) {
            throw AddressError("domain contains \(AddressError.describe(b)), only letters, digits and hyphens are allowed")
        }
        if u.first == UInt8(ascii: "-") || u.last == UInt8(ascii: "-") {
            throw AddressError("domain label begins or ends with a hyphen")
        }
    }

    static func isLDH(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "-")
    }

    /// The conservative stand-in for IDNA2008 PVALID described at the top of the file.
    static func isAllowedInLabel(_ s: Unicode.Scalar) -> Bool {
        if s.isASCII { return isLDH(UInt8(s.value)) }
        switch s.properties.generalCategory {
        case .lowercaseLetter, .otherLetter, .modifierLetter, .nonspacingMark, .spacingMark, .decimalNumber:
            return true
        default:
            // Uppercase and titlecase letters that survive lowercasing have no
            // lowercase form and are rare; refuse them with everything else.
            return false
        }
    }
}

extension Unicode.GeneralCategory {
    var isMark: Bool { self == .nonspacingMark || self == .spacingMark || self == .enclosingMark }
}

/// Punycode, RFC 3492: a Bootstring encoding of Unicode code points as the letters,
/// digits and hyphen a DNS label allows. Both directions check every arithmetic step
/// for overflow, because the decoder's input is attacker-controlled.
public enum Punycode {
    static let base = 36, tMin = 1, tMax = 26, skew = 38, damp = 700
    static let initialBias = 72, initialN = 0x80
    /// Decoding inserts into an array, quadratic in the length. DNS labels are at most
    /// 63 octets; this bound only keeps hostile callers of the public API cheap.
    static let maxInput = 4096

    /// Encodes a string's code points. Case is kept for basic (ASCII) code points;
    /// extended digits are lowercase. Nil only on overflow or over-long input.
    public static func encode(_ text: String) -> String? { encode(Array(text.unicodeScalars)) }

    public static func encode(_ input: [Unicode.Scalar]) -> String? {
        guard input.count <= maxInput else { return nil }
        var output: [UInt8] = []
        for s in input where s.isASCII { output.append(UInt8(s.value)) }
        let basicCount = output.count
        var handled = basicCount
        if basicCount > 0 { output.append(UInt8(ascii: "-")) }

        var n = initialN, delta = 0, bias = initialBias
        let values = input.map { Int($0.value) }
        while handled < values.count {
            // The smallest code point not yet handled; exists because handled < count.
            var m = Int.max
            for v in values where v >= n && v < m { m = v }
            guard let step = multiplyAdd(m - n, handled + 1, delta) else { return nil }
            delta = step
            n = m
            for v in values {
                if v < n {
                    guard delta < Int.max else { return nil }
                    delta += 1
                }
                if v == n {
                    var q = delta
                    var k = base
                    while true {
                        let t = threshold(k, bias)
                        if q < t { break }
                        output.append(digit(t + (q - t) % (base - t)))
                        q = (q - t) / (base - t)
                        k += base
                    }
                    output.append(digit(q))
                    bias = adapt(delta, handled + 1, firstTime: handled == basicCount)
                    delta = 0
                    handled += 1
                }
            }
            delta += 1
            n += 1
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes Punycode (without the `xn--` prefix). Nil for anything malformed:
    /// non-ASCII input, invalid digits, truncated numbers, overflow, or a result that is
    /// not a valid Unicode scalar.
    public static func decode(_ text: String) -> String? {
        let input = Array(text.utf8)
        guard input.count <= maxInput, input.allSatisfy({ $0 < 0x80 }) else { return nil }
        var output: [Unicode.Scalar] = []
        var pos = 0
        if let delimiter = input.lastIndex(of: UInt8(ascii: "-")) {
            for b in input[..<delimiter] { output.append(Unicode.Scalar(b)) }
            pos = delimiter > 0 ? delimiter + 1 : 0
            // "-" alone with no basic code points before it: RFC 3492 6.2 starts at 0,
            // and the hyphen then fails as a digit below.
        }
        var n = initialN, i = 0, bias = initialBias
        while pos < input.count {
            let oldI = i
            var w = 1
            var k = base
            while true {
                guard pos < input.count, let d = digitValue(input[pos]) else { return nil }
                pos += 1
                guard let next = multiplyAdd(d, w, i) else { return nil }
                i = next
                let t = threshold(k, bias)
                if d < t { break }
                let (nw, o) = w.multipliedReportingOverflow(by: base - t)
                guard !o else { return nil }
                w = nw
                k += base
            }
            let count = output.count + 1
            bias = adapt(i - oldI, count, firstTime: oldI == 0)
            let (nn, o) = n.addingReportingOverflow(i / count)
            guard !o else { return nil }
            n = nn
            i %= count
            guard n <= 0x10FFFF, let scalar = Unicode.Scalar(UInt32(n)), !scalar.isASCII else { return nil }
            output.insert(scalar, at: i)
            i += 1
        }
        var s = String.UnicodeScalarView()
        s.append(contentsOf: output)
        return String(s)
    }

    /// a * b + c, or nil on overflow.
    static func multiplyAdd(_ a: Int, _ b: Int, _ c: Int) -> Int? {
        let (p, o1) = a.multipliedReportingOverflow(by: b)
        guard !o1 else { return nil }
        let (r, o2) = p.addingReportingOverflow(c)
        return o2 ? nil : r
    }

    static func threshold(_ k: Int, _ bias: Int) -> Int {
        k <= bias ? tMin : (k >= bias + tMax ? tMax : k - bias)
    }

    static func adapt(_ delta: Int, _ numPoints: Int, firstTime: Bool) -> Int {
        var delta = firstTime ? delta / damp : delta / 2
        delta += delta / numPoints
        var k = 0
        while delta > ((base - tMin) * tMax) / 2 {
            delta /= base - tMin
            k += base
        }
        return k + (base - tMin + 1) * delta / (delta + skew)
    }

    static func digit(_ d: Int) -> UInt8 {
        d < 26 ? UInt8(ascii: "a") + UInt8(d) : UInt8(ascii: "0") + UInt8(d - 26)
    }

    static func digitValue(_ b: UInt8) -> Int? {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return Int(b - UInt8(ascii: "a"))
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return Int(b - UInt8(ascii: "A"))
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(b - UInt8(ascii: "0")) + 26
        default: return nil
        }
    }
}
