internal import CLibXML2

/// One document from libxml2's HTML parser, freed when released. The parser is
/// the lenient, error-recovering one that browsers' forgiveness calls for; it
/// never touches the network (NONET), reads the bytes as UTF-8 whatever a <meta
/// charset> in the mail claims (IGNORE_ENC: no UTF-7 games), and reports nothing
/// on stderr. It runs with a parser context of its own, freed right after, only
/// to install markPrefixedElements.
final class ParsedHTML {
    let document: htmlDocPtr

    /// libxml2 wants its globals set up once, before any thread parses.
    private static let initialized: Bool = {
        xmlInitParser()
        return true
    }()

    static let options = Int32(bitPattern: HTML_PARSE_NOERROR.rawValue | HTML_PARSE_NOWARNING.rawValue
        | HTML_PARSE_NONET.rawValue | HTML_PARSE_RECOVER.rawValue | HTML_PARSE_COMPACT.rawValue
        | HTML_PARSE_IGNORE_ENC.rawValue)

    /// nil when the input is too large for libxml2 (2 GiB) or it gives no document.
    init?(_ html: String) {
        _ = Self.initialized
        // Parsed as the content of a <body>: text at the start is then body text, as
        // in a browser, not put into a <p> (libxml2 implies one for text outside
        // any element). A mail's own <html>, <head> and <body> tags that follow are
        // misplaced and ignored; what was in its head is dropped by the policy.
        var bytes = Array("<body>".utf8)
        bytes += html.utf8.starts(with: [0xEF, 0xBB, 0xBF]) ? html.utf8.dropFirst(3) : html.utf8[...]
        // libxml2 stops reading at a NUL in some places (the rest of the mail
        // would vanish); the HTML standard reads it as U+FFFD in text, so do we.
        if bytes.contains(0) {
            bytes = bytes.flatMap { $0 == 0 ? [0xEF, 0xBF, 0xBD] : [$0] }
        }
        guard bytes.count < Int(Int32.max), let context = htmlNewParserCtxt() else { return nil }
        defer { htmlFreeParserCtxt(context) }
        context.pointee.sax.pointee.startElement = markPrefixedElements
        let parsed = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                htmlCtxtReadMemory(context, $0, Int32(buffer.count), nil, "UTF-8", Self.options)
            }
        }
        guard let parsed else { return nil }
        document = parsed
    }

    deinit { xmlFreeDoc(document) }

    /// The document's top-level nodes (a DOCTYPE, the implied <html>).
    var firstTopNode: xmlNodePtr? { document.pointee.children }
}

/// Read-only views of libxml2's tree, valid while the ParsedHTML lives.
extension UnsafeMutablePointer where Pointee == xmlNode {
    var isElement: Bool { pointee.type == XML_ELEMENT_NODE }
    var isText: Bool { pointee.type == XML_TEXT_NODE }

    /// An element's name, lowercased (libxml2 already lowercases HTML names; an
    /// allowlist must not depend on that).
    var elementName: String { asciiLowercased(pointee.name) }

    /// Whether the element was written with a prefix (`<o:p>`, `<v:imagedata>`).
    var isPrefixed: Bool { pointee._private == prefixedMark }

    /// A text node's characters as UTF-8 bytes (also for COMPACT nodes, whose
    /// content pointer points into the node itself).
    var textBytes: UnsafeBufferPointer<UInt8> { cBytes(pointee.content) }

    /// An element's attributes in document order, names lowercased and values
    /// with character references already decoded by the parser. A valueless
    /// attribute (`<td nowrap>`) has the empty value.
    var attributes: [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        var attribute = pointee.properties
        while let a = attribute {
            defer { attribute = a.pointee.next }
            guard a.pointee.ns == nil else { continue }   // never an HTML attribute
            var value: [UInt8] = []
            var part = a.pointee.children
            while let p = part {
                if p.pointee.type == XML_TEXT_NODE { value += cBytes(p.pointee.content) }
                part = p.pointee.next
            }
            out.append((asciiLowercased(a.pointee.name), String(decoding: value, as: UTF8.self)))
        }
        return out
    }
}

private func cBytes(_ p: UnsafePointer<xmlChar>?) -> UnsafeBufferPointer<UInt8> {
    guard let p else { return UnsafeBufferPointer(start: nil, count: 0) }
    return UnsafeBufferPointer(start: p, count: Int(xmlStrlen(p)))
}

private func cBytes(_ p: UnsafeMutablePointer<xmlChar>?) -> UnsafeBufferPointer<UInt8> {
    cBytes(UnsafePointer(p))
}

private func asciiLowercased(_ p: UnsafePointer<xmlChar>?) -> String {
    let name = cBytes(p)
    var lowered = String(decoding: name, as: UTF8.self)
    if name.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) {   // rare: libxml2 lowercases
        lowered = String(decoding: name.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
    }
    return lowered
}

/// libxml2 names an element written `<o:p>` just `p` (it splits off the prefix,
/// finds no namespace for it and keeps none), yet Outlook's `<o:p>` is no
/// paragraph and `<v:img>` no image. This start-element handler does what the
/// standard one does and then marks such an element in its user-data field, so
/// the policy can treat it as the unknown element it is.
private let markPrefixedElements: startElementSAXFunc = { context, name, attributes in
    let parser = context?.assumingMemoryBound(to: xmlParserCtxt.self)
    let before = parser?.pointee.node
    xmlSAX2StartElement(context, name, attributes)
    guard let name, xmlStrchr(name, UInt8(ascii: ":")) != nil,
          let node = parser?.pointee.node, node != before else { return }
    node.pointee._private = prefixedMark
}

/// Any fixed address does; this one is never read through.
private nonisolated(unsafe) let prefixedMark = UnsafeMutableRawPointer(bitPattern: 0x5)
