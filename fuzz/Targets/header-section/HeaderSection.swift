@testable import SLMessage

/// The header section parser (field folding, obsolete syntax, 8-bit, CR and LF
/// alone): whatever it accepts re-serialises byte for byte, since a stage that
/// does not change a header must not change its bytes either.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let header = try? HeaderSection.parse(bytes) else { return 0 }
    precondition(header.bytes == bytes, "a parsed header section does not re-serialise byte for byte")
    return 0
}
