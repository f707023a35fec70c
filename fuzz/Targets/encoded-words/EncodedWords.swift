@testable import SLMessage

/// RFC 2047 encoded words (EncodedWords.swift) and the charset conversion behind them.
/// Invariants:
/// - decode never traps, on any text, and leaves text without "=?" alone;
/// - encodeIfNeeded gives words of at most 75 characters, printable ASCII only
///   (so it can go into a header field), and decoding it gives the text back; this
///   holds for the input itself and for whatever decode made of it;
/// - one decoded word leaves the rest of the text untouched (decodeWord returns a
///   suffix of its input);
/// - Charsets.decode never traps, whatever the charset and the bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    let decoded = EncodedWords.decode(text)
    if !text.contains("=?") { precondition(decoded == text) }
    for t in [text, decoded] {
        let enc = EncodedWords.encodeIfNeeded(t)
        if enc != t {
            precondition(enc.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }, "encoded text is not printable ASCII")
            for w in enc.split(separator: " ") { precondition(w.utf8.count <= 75, "encoded word longer than 75") }
        }
        precondition(EncodedWords.decode(enc) == t, "decode(encodeIfNeeded(t)) != t")
    }
    if let r = text.range(of: "=?") {
        let s = text[r.lowerBound...]
        if let (_, rest) = EncodedWords.decodeWord(s) {
            precondition(rest.endIndex == s.endIndex && rest.startIndex > s.startIndex, "decodeWord rest is not a suffix")
        }
    }
    // Charsets: first byte chooses the charset.
    if let first = bytes.first {
        let names = ["utf-8", "us-ascii", "iso-8859-1", "windows-1252", "windows-1250", "windows-1251", "windows-1253",
                     "windows-1254", "iso-8859-2", "utf-16", "utf-16be", "utf-16le", "shift_jis", "euc-jp", "iso-2022-jp",
                     "x-unknown"]
        let name = names[Int(first) % names.count]
        let payload = Array(bytes.dropFirst())
        if let s = Charsets.decode(payload, charset: name) { _ = s.unicodeScalars.count }
        // As an encoded word too, both encodings.
        let b64 = "=?\(name)?B?\(base64(payload))?="
        _ = EncodedWords.decode(b64 + " x " + b64)
    }
    return 0
}

func base64(_ b: Bytes) -> String {
    let t = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out = Bytes()
    var i = 0
    while i < b.count {
        let n = min(3, b.count - i)
        var v = UInt32(b[i]) << 16
        if n > 1 { v |= UInt32(b[i + 1]) << 8 }
        if n > 2 { v |= UInt32(b[i + 2]) }
        out.append(t[Int(v >> 18 & 63)]); out.append(t[Int(v >> 12 & 63)])
        out.append(n > 1 ? t[Int(v >> 6 & 63)] : UInt8(ascii: "="))
        out.append(n > 2 ? t[Int(v & 63)] : UInt8(ascii: "="))
        i += 3
    }
    return String(decoding: out, as: UTF8.self)
}
