@testable import SLEscrow

/// EscrowLink(parsing:) (SLEscrow/Notice.swift): the link a recipient pastes into
/// the portal or sl-escrow. What parses has the link's shape (32 lower-case hex
/// digits of id, an index below 10000, a 40-64 character base64url secret) and,
/// written back by url(base:), parses to the same id, index and secret. Also the
/// notice template renderer (NoticeTemplates.render): a template without values is
/// unchanged, and a value is inserted once, never itself rendered.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    if let link = EscrowLink(parsing: text) {
        precondition(link.id.utf8.count == 32 && link.id.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) },
                     "a parsed link's id is not 32 lower-case hex digits: \(link.id)")
        precondition((0..<10_000).contains(link.index), "a parsed link's index is \(link.index)")
        precondition((40...64).contains(link.secret.utf8.count)
                     && link.secret.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F },
                     "a parsed link's secret is not base64url of 40-64 characters: \(link.secret)")
        for base in ["https://portal.example/escrow", "http://[::1]:8080", ""] {
            precondition(EscrowLink(parsing: link.url(base: base)) == link, "\(link) written with base \(base) parses otherwise")
            precondition(EscrowLink(parsing: " <\(link.url(base: base))>\r\n") == link, "\(link) in angle brackets parses otherwise")
        }
    }
    // Template and value: the input split at its first NUL.
    let parts = text.split(separator: "\0", maxSplits: 1, omittingEmptySubsequences: false)
    let template = String(parts[0])
    precondition(NoticeTemplates.render(template, [:]) == template, "a template without values renders otherwise")
    if parts.count == 2 {
        let value = String(parts[1])
        let marker = "\u{1}"
        let once = NoticeTemplates.render(template, ["sender": value])
        let marked = NoticeTemplates.render(template, ["sender": marker])
        precondition(once == marked.replacingOccurrences(of: marker, with: value) || template.contains(marker) || value.contains(marker),
                     "a value is rendered, not inserted")
    }
    return 0
}
