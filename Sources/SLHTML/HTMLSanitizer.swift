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
/// Bounds: elements deeper than MailHTMLPolicy.maxDepth (128) are unwrapped, their
/// text kept; libxml2 stops reading a document at 256 levels of nesting, and what
/// follows is not shown. (Lifting that with XML_PARSE_HUGE would let a mail make
/// the parser's end-tag search quadratic.) The walk is a loop, not recursion.
/// `sanitize` is idempotent when `resolveContentID` keeps references as they are
/// (`{ "cid:" + $0 }`); a real resolver's URLs are not `cid:` and would not pass
/// a second time.
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
        var pass = 1
        while true {
            guard let parsed = ParsedHTML(source) else { return "" }
            // The first pass over raw mail almost never settles, so only later
            // passes also write the output with images resolved.
            var walk = Walk(self, resolving: pass > 1)
            walk.run(from: parsed.firstTopNode)
            let canonical = walk.canonical.string
            if canonical != source && pass < Self.passes {
                source = canonical
                pass += 1
                continue
            }
            if let resolved = walk.resolved { return resolved.string }
            var again = Walk(self, resolving: true)
            again.run(from: parsed.firstTopNode)
            return again.resolved?.string ?? ""
        }
    }

    /// Every pass is safe on its own. Passes are repeated until the output reads
    /// back as itself, which makes `sanitize` idempotent: an unwrapped element can
    /// leave markup that libxml2 reads back as a different tree (`<p><foo><p>`
    /// becomes `<p><p>`, which it then reads as two paragraphs). Ordinary mail
    /// settles after one pass (the second confirms it); this bounds the rest.
    static let passes = 4

    fileprivate func resolve(_ contentID: String) -> String? { resolveContentID(contentID) }
}

/// One pass over libxml2's tree, depth first, with an explicit stack of the
/// elements entered (deep nesting is a loop, not a stack overflow). It writes the
/// canonical form, images kept as the `cid:` references they are (what the passes
/// compare), and, when asked, the output proper with images resolved; the two
/// differ in `img` elements only.
private struct Walk {
    private(set) var canonical = HTMLWriter(capacity: 4096)
    private(set) var resolved: HTMLWriter?
    private let sanitizer: HTMLSanitizer

    /// An element entered: its end tag to write on leaving, nil if unwrapped.
    private var entered: [(node: xmlNodePtr, endTag: String?)] = []
    private var depth = 0

    init(_ sanitizer: HTMLSanitizer, resolving: Bool) {
        self.sanitizer = sanitizer
        resolved = resolving ? HTMLWriter(capacity: 4096) : nil
    }

    mutating func run(from first: xmlNodePtr?) {
        var current = first
        while let node = current {
            if node.isText {
                let text = node.textBytes
                canonical.text(text)
                resolved?.text(text)
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

    /// Writes the start tag and returns the end tag to write ("" for none, as for
    /// an unwrapped element), or nil when the element and its content are skipped.
    private mutating func enter(_ node: xmlNodePtr) -> String? {
        let name = node.elementName
        if MailHTMLPolicy.droppedWithContent.contains(name) { return nil }
        let isVoid = MailHTMLPolicy.voidElements.contains(name)
        guard !node.isPrefixed, MailHTMLPolicy.elements[name] != nil, isVoid || depth < MailHTMLPolicy.maxDepth else { return "" }
        var attributes = Self.attributes(of: name, node)
        switch name {
        case "a":
            guard let link = attributes.link else { return "" }   // unwrapped: its text stays
            attributes.kept = [("href", link), ("rel", "noopener noreferrer"), ("target", "_blank")] + attributes.kept
        case "img":
            image(attributes)
            return ""
        default:
            break
        }
        canonical.open(name, attributes.kept)
        resolved?.open(name, attributes.kept)
        if isVoid { return "" }
        depth += 1
        return name
    }

    private mutating func leave(_ endTag: String) {
        canonical.close(endTag)
        resolved?.close(endTag)
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

    /// An image of the message itself, or else its alt text, as a browser shows
    /// it when images are off.
    private mutating func image(_ attributes: Attributes) {
        func write(_ writer: inout HTMLWriter, _ src: String?) {
            if let src {
                writer.open("img", [("src", src)] + attributes.kept)
            } else if let alt = attributes.alt {
                writer.text(alt)
            }
        }
        write(&canonical, attributes.contentID.map { "cid:" + $0 })
        if resolved != nil { write(&resolved!, attributes.contentID.flatMap(sanitizer.resolve)) }
    }

    struct Attributes {
        var kept: [(name: String, value: String)] = []
        var link: String?        // a: a safe href
        var contentID: String?   // img: the cid: reference
        var alt: String?         // img: for when the image is dropped
    }

    /// The element's attributes that the policy keeps, and the URLs it checked.
    private static func attributes(of name: String, _ node: xmlNodePtr) -> Attributes {
        let own = MailHTMLPolicy.elements[name] ?? []
        var out = Attributes()
        for (attribute, value) in node.attributes {
            switch attribute {
            case "href" where name == "a":
                out.link = LinkPolicy.safeLink(value)
            case "src" where name == "img":
                out.contentID = LinkPolicy.contentID(value)
            case "style":
                if let style = StyleFilter.filter(value) { out.kept.append(("style", style)) }
            default:
                if attribute == "alt", !value.isEmpty { out.alt = value }
                if own.contains(attribute) || MailHTMLPolicy.globalAttributes.contains(attribute) {
                    out.kept.append((attribute, value))
                }
            }
        }
        return out
    }
}
