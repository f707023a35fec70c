@testable import SLMessage

/// MIMEEntity.parse: the entity tree, multipart boundaries, message/rfc822, depth.
/// Invariants:
/// - it throws only MessageError.malformed, for a NUL in a header section or nesting
///   deeper than maxDepth, and never traps;
/// - an unchanged tree serialises to exactly its input (no byte lost, none made up,
///   no part outside the input), and the serialised bytes parse to the same tree;
/// - nesting is limited exactly: a tree of depth D parses with maxDepth D and throws
///   with maxDepth D - 1;
/// - each part's layout agrees with its content type; decodedBody and the
///   Content-Disposition parse of every part never trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let entity: MIMEEntity
    do {
        entity = try MIMEEntity.parse(bytes)
    } catch MessageError.malformed {
        return 0
    } catch {
        preconditionFailure("parse threw something other than MessageError.malformed: \(error)")
    }
    let out = entity.serialized()
    precondition(out == bytes, "an unchanged tree does not serialise to its input")
    let again = try! MIMEEntity.parse(out)
    precondition(same(entity, again), "the serialised tree parses to another tree")

    let d = depth(entity)
    precondition(d <= 64, "tree deeper than maxDepth")
    _ = try! MIMEEntity.parse(bytes, maxDepth: d)
    if d > 0 {
        do {
            _ = try MIMEEntity.parse(bytes, maxDepth: d - 1)
            preconditionFailure("a tree of depth \(d) parsed with maxDepth \(d - 1)")
        } catch MessageError.malformed {
        } catch {
            preconditionFailure("depth error is not MessageError.malformed: \(error)")
        }
    }
    check(entity)
    return 0
}

func depth(_ e: MIMEEntity) -> Int { e.parts.map { depth($0) + 1 }.max() ?? 0 }

func same(_ a: MIMEEntity, _ b: MIMEEntity) -> Bool {
    a.header == b.header && a.contentType == b.contentType && a.body == b.body && a.preamble == b.preamble
        && a.epilogue == b.epilogue && a.layout == b.layout && a.parts.count == b.parts.count
        && zip(a.parts, b.parts).allSatisfy { same($0, $1) }
}

func check(_ e: MIMEEntity) {
    switch e.layout {
    case .leaf:
        precondition(e.parts.isEmpty && e.preamble.isEmpty && e.epilogue.isEmpty)
        _ = try? e.decodedBody()
    case .encapsulated:
        precondition(e.contentType.mimeType == "message/rfc822" && e.parts.count == 1 && e.body.isEmpty)
    case .multipart(let boundary, let delimiters, let close):
        precondition(e.contentType.isMultipart && e.body.isEmpty)
        precondition(Array((e.contentType.boundary ?? "").utf8) == boundary && !boundary.isEmpty)
        precondition(delimiters.count == e.parts.count, "a part without its delimiter")
        if close == nil { precondition(e.epilogue.isEmpty, "an epilogue without a close delimiter") }
        for dl in delimiters { precondition(MultipartSplit.delimiterKind(trimLeadingEOL(dl), boundary: boundary) == false) }
        if let close { precondition(MultipartSplit.delimiterKind(trimLeadingEOL(close), boundary: boundary) == true) }
    }
    _ = e.contentDisposition
    _ = e.transferEncoding
    for p in e.parts { check(p) }
}

/// A delimiter as kept includes the line break before it.
func trimLeadingEOL(_ d: Bytes) -> ArraySlice<UInt8> {
    var s = d[...]
    if s.first == 0x0D, s.dropFirst().first == 0x0A { s = s.dropFirst(2) } else if s.first == 0x0A { s = s.dropFirst() }
    return s
}
