@testable import SLMessage

/// The header section parser (field folding, obsolete syntax, 8-bit, CR and LF
/// alone). `scan` does not promise that all of its input is a header section: it
/// stops at the empty line, or (leniently, like Postfix) at the first line that is
/// neither a field nor a continuation of one, and that line starts the body. What it
/// does promise, and what this target checks:
/// - it throws only for a NUL byte in the header lines, never traps;
/// - the section re-serialises to exactly the bytes before `bodyStart`, so a stage
///   that does not change a header does not change its bytes;
/// - each field starts with a `name:` line and the rest of its lines are
///   continuations; every line but the input's last keeps its own line ending;
/// - the separator is empty, "\n" or "\r\n", and an empty one means the body starts
///   with a line that is not part of a header section (or the input ended);
/// - scanning the serialised section again gives the same section (a fixpoint);
/// - `parse` is `scan` without the body; interpreting a field never traps.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let scan: HeaderSection.Scan
    do {
        scan = try HeaderSection.scan(bytes[...])
    } catch MessageError.malformed {
        precondition(bytes.contains(0), "scan threw for an input without NUL")
        return 0
    } catch {
        preconditionFailure("scan threw something other than MessageError.malformed: \(error)")
    }
    let header = scan.header
    precondition(scan.bodyStart >= 0 && scan.bodyStart <= bytes.count, "bodyStart outside the input")
    precondition(header.bytes == Array(bytes[..<scan.bodyStart]), "the section does not re-serialise to the bytes before the body")
    precondition(!bytes[..<scan.bodyStart].contains(0), "a NUL byte was accepted in the header section")
    precondition([[], [0x0A], [0x0D, 0x0A]].contains(header.separator), "odd separator \(header.separator)")
    precondition([[0x0A], [0x0D, 0x0A]].contains(header.lineEnding), "odd line ending \(header.lineEnding)")

    for (n, f) in header.fields.enumerated() {
        precondition(!f.raw.isEmpty)
        var lines: [ArraySlice<UInt8>] = []
        var s = f.raw.startIndex
        while s < f.raw.endIndex {
            let e = f.raw[s...].firstIndex(of: 0x0A).map { $0 + 1 } ?? f.raw.endIndex
            lines.append(f.raw[s..<e]); s = e
        }
        precondition(HeaderSection.kind(ofLine: lines[0]) == .field, "field does not start with a name: line")
        for l in lines.dropFirst() { precondition(HeaderSection.kind(ofLine: l) == .continuation, "non-continuation line inside a field") }
        let isLastOfInput = n == header.fields.count - 1 && header.separator.isEmpty && scan.bodyStart == bytes.count
        if !isLastOfInput { precondition(f.raw.last == 0x0A, "field lost its line ending") }
        precondition(f.valueStart >= 1 && f.valueStart <= f.raw.count && f.raw[f.valueStart - 1] == 0x3A, "valueStart not after the colon")
        precondition(Array(f.name.utf8) == Array(f.raw.prefix(f.name.utf8.count)) && f.name.utf8.allSatisfy(ASCII.isFieldNameByte), "name is not the raw name")
        precondition(f.hasName(f.name))
        _ = f.unfoldedValue
        _ = f.decodedValue
    }
    if header.separator.isEmpty && scan.bodyStart < bytes.count {
        let rest = bytes[scan.bodyStart...]
        let line = rest[..<(rest.firstIndex(of: 0x0A).map { $0 + 1 } ?? rest.endIndex)]
        let kind = HeaderSection.kind(ofLine: line)
        precondition(kind == .other || (kind == .continuation && header.fields.isEmpty),
                     "the section ended before a line that belongs to it")
    }
    let again = try! HeaderSection.scan(header.bytes[...])
    precondition(again.header.fields == header.fields && again.header.separator == header.separator
                 && again.bodyStart == header.bytes.count, "scanning the section again gives another section")
    // The line ending comes from the input's first line, which may be the body's.
    if header.bytes.contains(0x0A) { precondition(again.header.lineEnding == header.lineEnding) }
    precondition(try! HeaderSection.parse(bytes) == header)
    return 0
}
