/// What a mail's HTML may keep: the elements and attributes of ordinary mail
/// layout (HTML 4, as mail clients still write it and libxml2's parser knows it),
/// nothing that runs, nothing that loads, nothing that submits.
enum MailHTMLPolicy {
    /// Deeper than this many written elements, elements are unwrapped and only
    /// their text remains: browsers get slow (and have crashed) on DOMs tens of
    /// thousands deep, and no real mail nests this far (a long thread of quoted
    /// replies nests two or three levels a reply). libxml2 2.9 stops reading at
    /// 256 levels by itself; this bound is below that so that it is ours, and
    /// holds whatever a later libxml2 does.
    static let maxDepth = 128

    /// Kept on every allowed element. No `id` or `name`: either could clobber the
    /// DOM globals of a page around the mail (`window.x`, `document.forms`). No
    /// `class`: the mail's own <style> is gone, so its classes would style nothing,
    /// and they could only pick up the portal's own CSS to dress mail up as the
    /// portal. No `on*`, naturally.
    static let globalAttributes: Set<String> = ["title", "lang", "dir", "style"]

    /// Allowed elements and their own attributes besides the global ones. `a`
    /// and `img` get their URL attributes only through the checks in
    /// HTMLSanitizer; no other attribute here takes a URL (not `background`,
    /// `cite`, `longdesc`, `usemap`), so nothing else can fetch or navigate.
    static let elements: [String: Set<String>] = {
        var e: [String: Set<String>] = [:]
        for inline in ["span", "b", "i", "u", "s", "em", "strong", "small", "big", "sub", "sup", "tt",
                       "strike", "del", "ins", "kbd", "samp", "var", "dfn", "bdo", "abbr", "acronym",
                       "cite", "q", "code", "center", "blockquote", "address", "dl", "dt", "dd", "br"] {
            e[inline] = []
        }
        for block in ["p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "caption"] { e[block] = ["align"] }
        e["font"] = ["color", "face", "size"]
        e["a"] = []
        e["ul"] = ["type"]
        e["ol"] = ["type", "start"]
        e["li"] = ["type", "value"]
        e["pre"] = ["width"]
        e["hr"] = ["align", "width", "size", "color"]
        e["img"] = ["alt", "width", "height", "border", "align", "hspace", "vspace"]
        e["table"] = ["align", "width", "height", "border", "cellpadding", "cellspacing", "bgcolor"]
        for group in ["thead", "tbody", "tfoot"] { e[group] = ["align", "valign", "bgcolor"] }
        e["tr"] = ["align", "valign", "bgcolor", "height"]
        for cell in ["td", "th"] { e[cell] = ["align", "valign", "width", "height", "colspan", "rowspan", "bgcolor"] }
        for column in ["colgroup", "col"] { e[column] = ["span", "width", "align", "valign"] }
        return e
    }()

    /// Elements without content or end tag.
    static let voidElements: Set<String> = ["br", "hr", "img", "col"]

    /// Dropped together with everything inside: code (script, style, template),
    /// active content and plugins, forms and their controls, embedded documents,
    /// media that loads by itself, foreign content (SVG, MathML: their own parsing
    /// rules are where mutation XSS lives), and the document's head and metadata
    /// (title, meta refresh, base, link). Their text is not mail text either.
    static let droppedWithContent: Set<String> = [
        "script", "style", "template", "noscript", "noembed", "noframes", "xml", "xmp", "plaintext",
        "iframe", "frame", "frameset", "object", "embed", "applet", "param", "portal",
        "svg", "math", "form", "input", "button", "textarea", "select", "option", "optgroup",
        "datalist", "keygen", "isindex", "label", "fieldset", "legend", "output",
        "audio", "video", "source", "track", "canvas", "map", "area", "picture", "bgsound",
        "head", "title", "meta", "link", "base", "basefont", "slot", "dialog",
    ]
}
