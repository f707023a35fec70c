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
            text(v)
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: ">"))
    }

    mutating func close(_ name: String) {
        bytes += "</".utf8
        bytes += name.utf8
        bytes.append(UInt8(ascii: ">"))
    }

    mutating func text(_ s: String) {
        var s = s
        s.withUTF8 { text($0) }
    }

    /// & < > " ' as references; C0 controls other than tab, LF, FF and CR (which a
    /// browser would report as parse errors or show as boxes) left out. Bytes of
    /// multi-byte UTF-8 characters pass as they are: none is below 0x80. Runs
    /// that need nothing are copied whole (megabytes of mail text).
    mutating func text(_ utf8: UnsafeBufferPointer<UInt8>) {
        var run = 0
        for i in 0..<utf8.count {
            let b = utf8[i]
            guard b < 0x40 || b == 0x7F else { continue }
            let replacement: StaticString
            switch b {
            case UInt8(ascii: "&"): replacement = "&amp;"
            case UInt8(ascii: "<"): replacement = "&lt;"
            case UInt8(ascii: ">"): replacement = "&gt;"
            case UInt8(ascii: "\""): replacement = "&quot;"
            case UInt8(ascii: "'"): replacement = "&#39;"
            case 0x09, 0x0A, 0x0C, 0x0D: continue
            case 0x00..<0x20, 0x7F: replacement = ""
            default: continue
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[run..<i]))
            replacement.withUTF8Buffer { bytes.append(contentsOf: $0) }
            run = i + 1
        }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[run...]))
    }
}
