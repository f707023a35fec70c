/// The sanitizer's output, written byte by byte: every text and attribute value
/// escaped, every attribute double-quoted, so a browser's tokenizer finds exactly
/// the tags and attributes written here and nothing else.
struct HTMLWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    var string: String { String(decoding: bytes, as: UTF8.self) }

    mutating func open(_ name: String, _ attributes: [(name: String, value: String)]) {
        bytes.append(UInt8(ascii: "<"))
        bytes += name.utf8
        for (n, v) in attributes {
            bytes.append(UInt8(ascii: " "))
            bytes += n.utf8
            bytes += "=\"".utf8
            escape(v.utf8)
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: ">"))
    }

    mutating func close(_ name: String) {
        bytes += "</".utf8
        bytes += name.utf8
        bytes.append(UInt8(ascii: ">"))
    }

    mutating func text<S: Sequence>(_ utf8: S) where S.Element == UInt8 { escape(utf8) }

    /// & < > " ' as references; C0 controls other than tab, LF, FF and CR (which a
    /// browser would report as parse errors or show as boxes) left out. Bytes of
    /// multi-byte UTF-8 characters pass as they are: none is below 0x80.
    private mutating func escape<S: Sequence>(_ utf8: S) where S.Element == UInt8 {
        for b in utf8 {
            switch b {
            case UInt8(ascii: "&"): bytes += "&amp;".utf8
            case UInt8(ascii: "<"): bytes += "&lt;".utf8
            case UInt8(ascii: ">"): bytes += "&gt;".utf8
            case UInt8(ascii: "\""): bytes += "&quot;".utf8
            case UInt8(ascii: "'"): bytes += "&#39;".utf8
            case 0x09, 0x0A, 0x0C, 0x0D: bytes.append(b)
            case 0x00..<0x20, 0x7F: continue
            default: bytes.append(b)
            }
        }
    }
}
