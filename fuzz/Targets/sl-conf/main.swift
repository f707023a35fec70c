@testable import SLPolicy

/// sl.conf parsing (SLPolicy/ConfigurationParser.swift, Configuration.parse, and
/// the key table in ConfigurationKeys.swift). Invariants: never traps; every
/// failure is a ConfigurationError naming the source given and a line within the
/// input (0 for whole-file problems); and line ends do not matter: the same text
/// with CRLF line ends gives the same outcome (sl.conf is edited on any system).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    let lines = bytes.filter { $0 == 0x0A }.count + 1
    let lf = outcome(text, lines: lines)
    if !bytes.contains(0x0D) {
        let crlf = outcome(String(decoding: bytes.flatMap { $0 == 0x0A ? [0x0D, 0x0A] : [$0] }, as: UTF8.self), lines: lines)
        precondition(lf == crlf, "CRLF line ends change the outcome: \(lf) with LF, \(crlf) with CRLF")
    }
    return 0
}

func outcome(_ text: String, lines: Int) -> String {
    do {
        _ = try Configuration.parse(text, source: "fuzz.conf", relativeTo: "/etc/sl")
        return "ok"
    } catch let e as ConfigurationError {
        precondition(e.file == "fuzz.conf", "a ConfigurationError names \(e.file), not the source")
        precondition((0...lines).contains(e.line), "a ConfigurationError names line \(e.line) of \(lines)")
        return e.description
    } catch {
        preconditionFailure("sl.conf parsing threw \(type(of: error)), not a ConfigurationError: \(error)")
    }
}
