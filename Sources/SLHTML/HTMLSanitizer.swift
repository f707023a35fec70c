internal import CLibXML2

/// Makes the HTML of an untrusted mail safe to show as a fragment of a page.
///
/// libxml2's HTML parser reads the mail into a tree, forgiving whatever a browser
/// would forgive; the tree is then written out afresh, keeping only what the
/// allowlist (MailHTMLPolicy) names. libxml2's own serialization is never used, so
/// what leaves here is exactly what was decided here:
///
/// - Elements of ordinary mail layout (paragraphs, inline text, fonts, lists,
///   tables, headings, quotes, `a`, `img`). Unknown or disallowed elements are
///   unwrapped, their content kept; code, styles, forms, plugins, frames, media,
///   SVG/MathML and head elements are dropped with their content. Comments,
///   processing instructions and CDATA are dropped.
/// - Attributes per element, never an event handler, `id`, `name` or `class`;
///   `style` only with the declarations StyleFilter lets through.
/// - `a href` only for absolute http, https and mailto links, which open in a new
///   context without opener or referrer; other links lose their href (and so their
///   `a`) but keep their text.
/// - `img` only for `cid:` parts of the message itself, as `resolveContentID`
///   maps them; any other image is dropped (its alt text stays). Nothing can load
///   from elsewhere, which keeps "no remote content" true even without a CSP.
/// - Every text and attribute value escaped, every attribute double-quoted: a
///   browser parsing the result finds the same tags and attributes, whatever
///   libxml2 and the browser's parser would each have made of the original.
///
/// This is one layer: the portal also shows the result in a sandboxed iframe
/// under a Content-Security-Policy, and each layer must hold without the other.
///
/// Elements deeper than MailHTMLPolicy.maxDepth are unwrapped; the walk is a loop,
/// not recursion, so no input exhausts the stack. `sanitize` is idempotent when
/// `resolveContentID` keeps references as they are (`{ "cid:" + $0 }`); a real
/// resolver's URLs are not `cid:` and would not pass a second time.
public struct HTMLSanitizer: Sendable {
    private let resolveContentID: @Sendable (String) -> String?

    /// resolveContentID: a cid: reference (without "cid:") -> the URL to use, or
    /// nil to drop the image.
    public init(resolveContentID: @escaping @Sendable (String) -> String?) {
        self.resolveContentID = resolveContentID
    }

    /// A safe HTML fragment (body content only) from untrusted mail HTML.
    public func sanitize(_ html: String) -> String {
        var source = html
        for _ in 0..<Self.passes {
            guard let parsed = ParsedHTML(source) else { return "" }
            let written = write(parsed, images: .keepReferences)
            if written == source { return write(parsed, images: .resolve) }
            source = written
        }
        guard let parsed = ParsedHTML(source) else { return "" }
        return write(parsed, images: .resolve)
    }

    /// Every pass is safe on its own. Passes are repeated until the output reads
    /// back as itself, which makes `sanitize` idempotent: an unwrapped element can
    /// leave markup that libxml2 reads back as a different tree (`<p><foo><p>`
    /// becomes `<p><p>`, which it then reads as two paragraphs). Ordinary mail
    /// settles after one pass (the second confirms it); this bounds the rest.
    static let passes = 4

    /// How `img` sources are written: as the `cid:` references they are (the
    /// passes that settle the markup) or through resolveContentID (the output).
    fileprivate enum Images { case keepReferences, resolve }

    private func write(_ parsed: ParsedHTML, images: Images) -> String {
        var walk = Walk(writer: HTMLWriter(capacity: 4096), sanitizer: self, images: images)
        walk.run(from: parsed.firstTopNode)
        return walk.writer.string
    }

    /// What an allowed element is written as: its attributes, or nil when it is to
    /// be unwrapped instead (an `a` without a safe link, an `img` that would load
    /// from elsewhere).
    fileprivate func attributes(of name: String, _ node: xmlNodePtr, images: Images) -> [(name: String, value: String)]? {
        let own = MailHTMLPolicy.elements[name] ?? []
        var out: [(name: String, value: String)] = []
        var link: String? = nil
        var image: String? = nil
        for (attribute, value) in node.attributes {
            switch attribute {
            case "href" where name == "a":
                link = LinkPolicy.safeLink(value)
            case "src" where name == "img":
                image = LinkPolicy.contentID(value).flatMap { images == .resolve ? resolveContentID($0) : "cid:" + $0 }
            case "style":
                if let style = StyleFilter.filter(value) { out.append(("style", style)) }
            default:
                if own.contains(attribute) || MailHTMLPolicy.globalAttributes.contains(attribute) {
                    out.append((attribute, value))
                }
            }
        }
        switch name {
        case "a":
            guard let link else { return nil }
            return [("href", link), ("rel", "noopener noreferrer"), ("target", "_blank")] + out
        case "img":
            guard let image else { return nil }
            return [("src", image)] + out
        default:
            return out
        }
    }
}

/// One pass over libxml2's tree, depth first, with an explicit stack of the
/// elements entered (100,000 nested divs are a loop, not a stack overflow).
private struct Walk {
    var writer: HTMLWriter
    let sanitizer: HTMLSanitizer
    let images: HTMLSanitizer.Images

    /// An element entered: its end tag to write on leaving, nil if unwrapped.
    private var entered: [(node: xmlNodePtr, endTag: String?)] = []
    private var depth = 0

    init(writer: HTMLWriter, sanitizer: HTMLSanitizer, images: HTMLSanitizer.Images) {
        self.writer = writer
        self.sanitizer = sanitizer
        self.images = images
    }

    mutating func run(from first: xmlNodePtr?) {
        var current = first
        while let node = current {
            if node.isText {
                writer.text(node.textBytes)
            } else if node.isElement, let endTag = enter(node) {
                if let child = node.pointee.children {
                    entered.append((node, endTag.isEmpty ? nil : endTag))
                    current = child
                    continue
                }
                if !endTag.isEmpty { leave(endTag) }
            }
            current = next(after: node)
        }
    }

    /// Writes the start tag and returns the end tag to write ("" for none), or nil
    /// when the element and its content are skipped.
    private mutating func enter(_ node: xmlNodePtr) -> String? {
        let name = node.elementName
        if MailHTMLPolicy.droppedWithContent.contains(name) { return nil }
        guard !node.isPrefixed, MailHTMLPolicy.elements[name] != nil, depth < MailHTMLPolicy.maxDepth,
              let attributes = sanitizer.attributes(of: name, node, images: images) else {
            if name == "img" { imageText(node) }
            return ""
        }
        writer.open(name, attributes)
        if MailHTMLPolicy.voidElements.contains(name) { return "" }
        depth += 1
        return name
    }

    private mutating func leave(_ endTag: String) {
        writer.close(endTag)
        depth -= 1
    }

    /// The next node in document order after `node`'s subtree, closing the
    /// elements left on the way up.
    private mutating func next(after node: xmlNodePtr) -> xmlNodePtr? {
        var node = node
        while true {
            if let sibling = node.pointee.next { return sibling }
            guard let (parent, endTag) = entered.popLast() else { return nil }
            if let endTag { leave(endTag) }
            node = parent
        }
    }

    /// A dropped image keeps its alt text, as a browser shows it when images are off.
    private mutating func imageText(_ node: xmlNodePtr) {
        if let alt = node.attributes.first(where: { $0.name == "alt" })?.value, !alt.isEmpty {
            writer.text(alt.utf8)
        }
    }
}
