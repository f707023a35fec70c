import Foundation

/// RFC 2047 encoded words (`=?charset?B|Q?text?=`) in unstructured header text and in
/// phrases. Decoding is lenient in the way RFC 2047 section 6.3 asks: a word that is
/// malformed, or in a charset we cannot convert, is shown as it was written.
public enum EncodedWords {
    /// Decodes every encoded word in `text`. White space between two adjacent encoded
    /// words is dropped (RFC 2047 section 6.2); all other text is kept as is.
    public static func decode(_ text: String) -> String {
        guard text.contains("=?") else { return text }
        var out = ""
        var pendingSpace = ""        // white space after an encoded word, held back
        var lastWasEncoded = false
        var rest = Substring(text)
        while !rest.isEmpty {
            if rest.hasPrefix("=?"), let (decoded, after) = decodeWord(rest) {
                if !lastWasEncoded { out += pendingSpace }
                pendingSpace = ""
                out += decoded
                rest = after
                lastWasEncoded = true
                continue
            }
            let c = rest.removeFirst()
            if c == " " || c == "\t" {
                pendingSpace.append(c)
            } else {
                out += pendingSpace
                pendingSpace = ""
                out.append(c)
                lastWasEncoded = false
            }
        }
        return out + pendingSpace
    }

    /// Decodes one encoded word at the start of `s`, returning the text and what follows.
    static func decodeWord(_ s: Substring) -> (String, Substring)? {
        // =?charset?enc?text?=   charset may carry an RFC 2231 language: charset*lang
        let body = s.dropFirst(2)
        guard let q1 = body.firstIndex(of: "?") else { return nil }
        let charsetPart = body[..<q1]
        let afterCharset = body[body.index(after: q1)...]
        guard let q2 = afterCharset.firstIndex(of: "?") else { return nil }
        let enc = afterCharset[..<q2]
        let payloadStart = afterCharset.index(after: q2)
        guard let end = afterCharset[payloadStart...].range(of: "?=") else { return nil }
        let payload = afterCharset[payloadStart..<end.lowerBound]
        guard !charsetPart.isEmpty, enc.count == 1, payload.count <= 998,
              !payload.contains(" "), !payload.contains("\t") else { return nil }
        let charset = charsetPart.split(separator: "*", maxSplits: 1).first.map(String.init) ?? ""
        let bytes: Bytes?
        switch enc {
        case "B", "b": bytes = TransferDecoding.base64(Array(payload.utf8), strict: true)
        case "Q", "q": bytes = qDecode(Array(payload.utf8))
        default: bytes = nil
        }
        guard let raw = bytes, let text = Charsets.decode(raw, charset: charset) else { return nil }
        return (text, afterCharset[end.upperBound...])
    }

    /// The "Q" encoding: quoted-printable with `_` for space.
    static func qDecode(_ p: Bytes) -> Bytes? {
        var out = Bytes()
        var i = 0
        while i < p.count {
            let b = p[i]
            if b == UInt8(ascii: "_") { out.append(ASCII.space); i += 1; continue }
            if b == UInt8(ascii: "=") {
                guard i + 2 < p.count,
                      let hi = TransferDecoding.hexValue(p[i + 1]), let lo = TransferDecoding.hexValue(p[i + 2]) else { return nil }
                out.append(hi << 4 | lo)
                i += 3
                continue
            }
            out.append(b)
            i += 1
        }
        return out
    }

    /// Encodes `text` for an unstructured field (Subject, display names) when it is not
    /// plain ASCII: UTF-8, "B" encoding, words no longer than 75 characters (RFC 2047 2).
    public static func encodeIfNeeded(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) && !text.contains("=?") { return text }
        var words: [String] = []
        var chunk = Bytes()
        // 75 - len("=?UTF-8?B?") - len("?=") = 63 chars of base64 -> 45 bytes; never split a scalar
        for scalar in text.unicodeScalars {
            let enc = Array(String(scalar).utf8)
            if chunk.count + enc.count > 45 {
                words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=")
                chunk = []
            }
            chunk += enc
        }
        if !chunk.isEmpty { words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=") }
        return words.joined(separator: " ")
    }
}

/// Charset conversion for the charsets mail actually uses. Unknown charsets return nil
/// so the caller can keep the original text (never guess and show garbage silently).
public enum Charsets {
    public static func decode(_ bytes: Bytes, charset: String) -> String? {
        switch charset.lowercased() {
        case "utf-8", "utf8", "us-ascii", "ascii", "":
            return String(validating: bytes, as: UTF8.self) ?? String(lenientUTF8: bytes)
        case "iso-8859-1", "latin1", "iso_8859-1", "l1":
            return String(bytes.map { Character(Unicode.Scalar($0)) })
        default:
            guard let enc = foundationEncoding(charset) else { return nil }
            return String(data: Data(bytes), encoding: enc)
        }
    }

    static func foundationEncoding(_ name: String) -> String.Encoding? {
        switch name.lowercased() {
        case "windows-1252", "cp1252": return .windowsCP1252
        case "windows-1250", "cp1250": return .windowsCP1250
        case "windows-1251", "cp1251": return .windowsCP1251
        case "windows-1253", "cp1253": return .windowsCP1253
        case "windows-1254", "cp1254": return .windowsCP1254
        case "iso-8859-2", "latin2": return .isoLatin2
        case "utf-16": return .utf16
        case "utf-16be": return .utf16BigEndian
        case "utf-16le": return .utf16LittleEndian
        case "shift_jis", "shift-jis", "sjis": return .shiftJIS
        case "euc-jp": return .japaneseEUC
        case "iso-2022-jp": return .iso2022JP
        default: return nil
        }
    }
}
