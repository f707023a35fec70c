@testable import SLMessage

/// RFC 2045/2183 parameters with RFC 2231 extensions (MIMEParameters.swift), through
/// ContentType(parsing:) and ContentDisposition(parsing:). Invariants:
/// - parsing never traps (it never throws either: bad input is read leniently);
/// - names are lowercase tokens, the type/subtype and disposition lowercase tokens;
/// - headerValue is one line of printable ASCII (it goes into a header field as is);
/// - re-parsing headerValue gives the same type and every parameter that can be
///   written (those whose names are tokens without `*`), with the same values.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)

    let ct = ContentType(parsing: text)
    precondition(MIMEParameters.isToken(ct.type.utf8) && MIMEParameters.isToken(ct.subtype.utf8))
    precondition(ct.type == ct.type.lowercased() && ct.subtype == ct.subtype.lowercased())
    checkNames(ct.parameters)
    let ctValue = ct.headerValue
    checkPrintable(ctValue)
    let ct2 = ContentType(parsing: ctValue)
    precondition(ct2.mimeType == ct.mimeType, "type changed on re-parse: \(ct.mimeType) -> \(ct2.mimeType)")
    precondition(ct2.parameters == writable(ct.parameters), "parameters changed on re-parse: \(ct.parameters) -> \(ct2.parameters)")

    let cd = ContentDisposition(parsing: text)
    precondition(MIMEParameters.isToken(cd.disposition.utf8) && cd.disposition == cd.disposition.lowercased())
    checkNames(cd.parameters)
    let cdValue = cd.headerValue
    checkPrintable(cdValue)
    let cd2 = ContentDisposition(parsing: cdValue)
    precondition(cd2.disposition == cd.disposition, "disposition changed on re-parse")
    precondition(cd2.parameters == writable(cd.parameters), "parameters changed on re-parse: \(cd.parameters) -> \(cd2.parameters)")
    _ = cd.filename
    _ = ct.boundary
    _ = ct.charset
    return 0
}

func checkNames(_ p: [String: String]) {
    for name in p.keys {
        precondition(MIMEParameters.isToken(name.utf8) && name == name.lowercased(), "parameter name \(name) is not a lowercase token")
    }
}

func checkPrintable(_ v: String) {
    precondition(v.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }, "headerValue is not printable ASCII: \(v)")
}

func writable(_ p: [String: String]) -> [String: String] { p.filter { !$0.key.contains("*") } }
