/// Inline `style` attributes, cut down to plain typography and box layout. Each
/// declaration is kept only when its property is on the list and its value is
/// made of letters, digits, spaces and `# % . , -` and balanced quotes. With no
/// `(` there is no `url()`, `expression()`, `image-set()` or `var()`; with no `\`
/// no CSS escapes; with no `/`, `@`, `<`, `>`, `&`, `!` or `;` inside a value no
/// comments, at-rules, markup or a way out of the declaration. That is also why
/// words like "url" are not searched for: "Curlz MT" is a font.
enum StyleFilter {
    static let properties: Set<String> = [
        "color", "background-color", "font-family", "font-size", "font-weight", "font-style",
        "text-align", "text-decoration", "width", "height", "line-height", "vertical-align",
        "white-space", "list-style-type",
        "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
        "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    ]

    /// The declarations that pass, as `name: value; name: value`, or nil if none.
    static func filter(_ style: String) -> String? {
        var kept: [String] = []
        for declaration in style.split(separator: ";", omittingEmptySubsequences: true) {
            guard let colon = declaration.firstIndex(of: ":") else { continue }
            let name = trimmed(declaration[..<colon]).lowercased()
            let value = trimmed(declaration[declaration.index(after: colon)...])
            guard allowed(property: name), safe(value: value) else { continue }
            kept.append("\(name): \(value)")
        }
        return kept.isEmpty ? nil : kept.joined(separator: "; ")
    }

    /// The list, and every border property but border-image (an image URL).
    static func allowed(property name: String) -> Bool {
        if properties.contains(name) { return true }
        return (name == "border" || name.hasPrefix("border-")) && !name.hasPrefix("border-image")
            && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D }
    }

    static func safe(value: String) -> Bool {
        guard !value.isEmpty else { return false }
        var quote: UInt8? = nil
        for b in value.utf8 {
            switch b {
            case 0x61...0x7A, 0x41...0x5A, 0x30...0x39, UInt8(ascii: " "), UInt8(ascii: "#"),
                 UInt8(ascii: "%"), UInt8(ascii: "."), UInt8(ascii: ","), UInt8(ascii: "-"):
                continue
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                if quote == nil { quote = b } else if quote == b { quote = nil }
            default:
                return false
            }
        }
        return quote == nil   // an open string would run on into what follows
    }

    /// Trims ASCII white space and turns inner runs of tab, LF, CR and FF into
    /// single spaces (a line break inside a CSS string breaks the string).
    private static func trimmed(_ s: Substring) -> String {
        var out = ""
        var pendingSpace = false
        for c in s.unicodeScalars {
            if c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\u{0C}" {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.unicodeScalars.append(" ") ; pendingSpace = false }
                out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
