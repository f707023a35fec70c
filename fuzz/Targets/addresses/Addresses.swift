@testable import SLMessage

/// Address lists (AddressList.parse, EmailAddress(parsing:)) and IDNA/Punycode.
/// Invariants:
/// - parsing throws only AddressError, never traps;
/// - every parsed address re-serialises (headerValue) to one line without controls
///   that parses, alone and as a list, to the same address (local part, domain,
///   display name, and so the same comparison key);
/// - EmailAddress(parsing:) agrees with a one-element AddressList.parse;
/// - IDNA.toASCII gives an ASCII, lowercase result that is its own ASCII form
///   (idempotent), and whose Unicode form (toUnicode) maps back to it;
/// - Punycode.decode(encode(x)) == x, and decode never traps.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)

    var list: [EmailAddress] = []
    do { list = try AddressList.parse(text) } catch is AddressError {} catch {
        preconditionFailure("AddressList.parse threw \(error)")
    }
    for a in list { checkAddress(a) }
    if !list.isEmpty {
        let joined = list.map(\.headerValue).joined(separator: ", ")
        let again = try! AddressList.parse(joined)
        precondition(again.count == list.count && zip(again, list).allSatisfy(same), "the re-serialised list parses to another list")
    }
    do {
        let single = try EmailAddress(parsing: text)
        checkAddress(single)
        if let l = try? AddressList.parse(text) { precondition(l.count == 1 && same(l[0], single), "parsing one address and a list disagree") }
    } catch is AddressError {} catch {
        preconditionFailure("EmailAddress(parsing:) threw \(error)")
    }

    // IDNA on the text itself.
    if let ascii = try? IDNA.toASCII(text) {
        checkASCIIDomain(ascii)
    }
    // Punycode both ways.
    let scalars = Array(text.unicodeScalars.prefix(200))
    if let p = Punycode.encode(scalars) {
        precondition(p.utf8.allSatisfy { $0 < 0x80 })
        let back = Punycode.decode(p)
        precondition(back.map { Array($0.unicodeScalars) } == scalars || scalars.allSatisfy(\.isASCII) && back == nil,
                     "Punycode.decode(encode(x)) != x")
    }
    _ = Punycode.decode(text)
    _ = IDNA.toUnicode(text)
    return 0
}

func same(_ a: EmailAddress, _ b: EmailAddress) -> Bool {
    a.localPart == b.localPart && a.domain == b.domain && a.displayName == b.displayName && a.key == b.key
}

func checkAddress(_ a: EmailAddress) {
    let hv = a.headerValue
    precondition(!hv.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, "headerValue holds a control character")
    let b: EmailAddress
    do { b = try EmailAddress(parsing: hv) } catch {
        preconditionFailure("headerValue \(hv) of a parsed address does not parse: \(error)")
    }
    precondition(same(a, b), "headerValue \(hv) parses to another address: \(a.localPart)|\(a.domain)|\(a.displayName ?? "nil") -> \(b.localPart)|\(b.domain)|\(b.displayName ?? "nil")")
    let spec: EmailAddress
    do { spec = try EmailAddress(parsing: a.addrSpec) } catch {
        preconditionFailure("addrSpec \(a.addrSpec) does not parse: \(error)")
    }
    precondition(spec.localPart == a.localPart && spec.domain == a.domain && spec.key == a.key)
    if !a.domain.hasPrefix("[") { checkASCIIDomain(a.asciiDomain) }
}

func checkASCIIDomain(_ ascii: String) {
    precondition(ascii.utf8.allSatisfy { $0 < 0x80 } && ascii == ascii.lowercased(), "toASCII result not lowercase ASCII: \(ascii)")
    let again: String
    do { again = try IDNA.toASCII(ascii) } catch {
        preconditionFailure("toASCII(\(ascii)) is not its own ASCII form: \(error)")
    }
    precondition(again == ascii, "toASCII is not idempotent: \(ascii) -> \(again)")
    let unicode = IDNA.toUnicode(ascii)
    let back: String
    do { back = try IDNA.toASCII(unicode) } catch {
        preconditionFailure("the Unicode form \(unicode) of \(ascii) is refused: \(error)")
    }
    precondition(back == ascii, "toASCII(toUnicode(\(ascii))) = \(back)")
}
