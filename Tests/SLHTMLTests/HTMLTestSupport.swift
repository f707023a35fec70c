import Foundation
import Testing
import SLHTML

/// Fixtures/xss-vectors.txt: hostile HTML, read from the source tree at run time.
enum XSSCorpus {
    static let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/xss-vectors.txt")

    /// The vectors, `{NUL}` made a real U+0000. The text before the first `%%`
    /// line describes the file and is not a vector.
    static let vectors: [String] = {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return [] }
        var vectors: [String] = []
        var current: [Substring]? = nil
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "%%" {
                if let c = current { vectors.append(c.joined(separator: "\n")) }
                current = []
            } else {
                current?.append(line)
            }
        }
        if let c = current { vectors.append(c.joined(separator: "\n")) }
        return vectors.map { $0.trimmingCharacters(in: .newlines).replacingOccurrences(of: "{NUL}", with: "\u{0}") }
            .filter { !$0.isEmpty }
    }()
}

/// The sanitizer as the tests use it: `identity` keeps cid: references as they
/// are (what makes sanitize idempotent); `portal` maps them as a portal would.
enum Sanitizers {
    static let identity = HTMLSanitizer { "cid:" + $0 }
    static let portalPrefix = "https://portal.test/sl-escrow/part/"
    static let portal = HTMLSanitizer { id in
        id.isEmpty ? nil : portalPrefix + (id.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
    }
}

/// A tag of the sanitizer's output, attribute values decoded.
struct ScannedTag: CustomStringConvertible {
    var name: String
    var isEnd: Bool
    var attributes: [(name: String, value: String)]

    func value(_ attribute: String) -> String? { attributes.first { $0.name == attribute }?.value }
    var description: String { (isEnd ? "</" : "<") + name + attributes.map { " \($0.name)=\"\($0.value)\"" }.joined() + ">" }
}

struct ScanFailure: Error, CustomStringConvertible {
    var description: String
}

/// Reads the sanitizer's output by its own narrow grammar, with no regular
/// expression and no HTML parser: text in which `<` and `>` never appear raw and
/// `&` only starts one of five references; tags `<name a="v" ...>` and `</name>`
/// with lowercase names, nested properly. Anything else is a failure: it would
/// mean markup the sanitizer did not mean to write.
struct ScannedOutput {
    var tags: [ScannedTag] = []
    var text = ""
    var maxDepth = 0

    static let voidElements: Set<String> = ["br", "hr", "img", "col"]
    static let references: [(String, Character)] = [("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'")]

    init(_ html: String) throws {
        let s = Array(html.unicodeScalars)
        var i = 0
        var open: [String] = []
        func fail(_ why: String) -> ScanFailure {
            ScanFailure(description: "\(why) at \(i) in: \(String(String.UnicodeScalarView(s[max(0, i - 40)..<min(s.count, i + 40)])))")
        }
        func reference() throws -> Character {
            for (name, c) in Self.references where s.count - i >= name.unicodeScalars.count
                && String(String.UnicodeScalarView(s[i..<(i + name.unicodeScalars.count)])) == name {
                i += name.unicodeScalars.count
                return c
            }
            throw fail("a bare &")
        }
        func name(_ allowed: (Unicode.Scalar) -> Bool) -> String {
            var n = ""
            while i < s.count, allowed(s[i]) { n.unicodeScalars.append(s[i]); i += 1 }
            return n
        }
        let lowerAlnum: (Unicode.Scalar) -> Bool = { ("a"..."z").contains($0) || ("0"..."9").contains($0) }
        while i < s.count {
            switch s[i] {
            case ">": throw fail("a raw >")
            case "&": text.append(try reference())
            case "<":
                i += 1
                let isEnd = i < s.count && s[i] == "/"
                if isEnd { i += 1 }
                let tagName = name(lowerAlnum)
                guard !tagName.isEmpty else { throw fail("a < that starts no tag") }
                var tag = ScannedTag(name: tagName, isEnd: isEnd, attributes: [])
                while i < s.count, s[i] == " ", !isEnd {
                    i += 1
                    let attribute = name { lowerAlnum($0) || $0 == "-" }
                    guard !attribute.isEmpty, i + 1 < s.count, s[i] == "=", s[i + 1] == "\"" else { throw fail("a malformed attribute") }
                    i += 2
                    var value = ""
                    while i < s.count, s[i] != "\"" {
                        switch s[i] {
                        case "<", ">", "'": throw fail("a raw \(s[i]) in an attribute value")
                        case "&": value.append(try reference())
                        default: value.unicodeScalars.append(s[i]); i += 1
                        }
                    }
                    guard i < s.count else { throw fail("an unterminated attribute value") }
                    i += 1
                    tag.attributes.append((attribute, value))
                }
                guard i < s.count, s[i] == ">" else { throw fail("an unterminated tag") }
                i += 1
                if isEnd {
                    guard open.popLast() == tagName else { throw fail("</\(tagName)> closes nothing open") }
                } else if !Self.voidElements.contains(tagName) {
                    open.append(tagName)
                    maxDepth = max(maxDepth, open.count)
                }
                tags.append(tag)
            default:
                text.unicodeScalars.append(s[i])
                i += 1
            }
        }
        guard open.isEmpty else { throw fail("unclosed \(open)") }
    }
}

/// What the tests hold the output to, written down here apart from the
/// sanitizer's own tables, so that a change to those shows up as a failure.
enum ExpectedPolicy {
    static let elements: Set<String> = [
        "p", "br", "div", "span", "b", "i", "u", "s", "em", "strong", "small", "big", "sub", "sup", "tt",
        "strike", "del", "ins", "kbd", "samp", "var", "dfn", "bdo", "font", "center", "a", "ul", "ol", "li",
        "dl", "dt", "dd", "table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "colgroup", "col",
        "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code", "hr", "img", "abbr", "acronym",
        "cite", "q", "address",
    ]
    static let attributes: Set<String> = [
        "title", "lang", "dir", "style", "align", "valign", "width", "height", "colspan", "rowspan",
        "border", "cellpadding", "cellspacing", "bgcolor", "color", "face", "size", "alt", "type", "start",
        "value", "span", "hspace", "vspace",
    ]
    /// Only where they are checked: a's href, rel and target, img's src.
    static let checkedAttributes: [String: Set<String>] = ["a": ["href", "rel", "target"], "img": ["src"]]

    /// Every way the output could break the sanitizer's promise, as messages;
    /// none for a safe output. `forbidden`: strings no attribute may hold (the
    /// canary's address), `imagePrefix`: where every img must point.
    static func violations(_ output: String, forbidden: [String] = ["XSSHOST"], imagePrefix: String) -> [String] {
        let scanned: ScannedOutput
        do { scanned = try ScannedOutput(output) } catch { return ["\(error)"] }
        var found: [String] = []
        for tag in scanned.tags where !tag.isEnd {
            guard elements.contains(tag.name) else { found.append("element \(tag)"); continue }
            for (name, value) in tag.attributes {
                let folded = value.lowercased().filter { !$0.isWhitespace && !($0.asciiValue.map { $0 < 0x20 } ?? false) }
                if name.hasPrefix("on") { found.append("event handler \(tag)") }
                if !attributes.contains(name) && !(checkedAttributes[tag.name]?.contains(name) ?? false) {
                    found.append("attribute \(name) in \(tag)")
                }
                for bad in ["javascript:", "vbscript:", "data:"] where folded.contains(bad) { found.append("\(bad) in \(tag)") }
                for bad in forbidden where value.contains(bad) { found.append("\(bad) in \(tag)") }
                if name == "style", value.unicodeScalars.contains(where: { "()\\@/<>&!{}".unicodeScalars.contains($0) || !$0.isASCII }) {
                    found.append("unsafe style in \(tag)")
                }
            }
            if tag.name == "a" {
                let href = tag.value("href") ?? ""
                if !(["http:", "https:", "mailto:"].contains { href.lowercased().hasPrefix($0) }) { found.append("link \(tag)") }
                if tag.value("rel") != "noopener noreferrer" || tag.value("target") != "_blank" { found.append("link without rel/target \(tag)") }
            }
            if tag.name == "img", !(tag.value("src")?.hasPrefix(imagePrefix) ?? false) { found.append("image \(tag)") }
        }
        return found
    }
}
