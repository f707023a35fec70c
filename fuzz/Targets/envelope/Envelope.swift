@testable import SLMessage

/// The X-SL-* routing fields (Envelope.swift) and the xtext they carry addresses in.
/// Invariants:
/// - Envelope.read throws only MessageError.malformed, never traps;
/// - an envelope it reads, written back (into the same header, replacing every X-SL-*
///   field, and into an empty one), reads back the same; when writing refuses a value
///   it is with MessageError.invalidField, and only for values that are not tokens;
/// - written fields are well-formed header fields that leave the other fields alone;
/// - XText.decode(encode(s)) == s, and xtext is printable ASCII without `;` or `=`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    let x = XText.encode(text)
    precondition(x.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ";") && $0 != UInt8(ascii: "=") })
    precondition(XText.decode(x) == text, "XText.decode(encode(s)) != s")
    if let d = XText.decode(text) { precondition(XText.decode(XText.encode(d)) == d) }

    guard let header = try? HeaderSection.scan(bytes[...]).header else { return 0 }
    let envelope: Envelope?
    do { envelope = try Envelope.read(from: header) } catch MessageError.malformed { return 0 } catch {
        preconditionFailure("Envelope.read threw \(error)")
    }
    guard let envelope else {
        precondition(header.first("X-SL-Method") == nil && header.first("X-SL-Envelope-From") == nil)
        return 0
    }
    for var target in [header, HeaderSection(fields: [], separator: [0x0A], lineEnding: [0x0A])] {
        let others = target.fields.filter { !HeaderSection.isEnvelopeField($0) }
        do {
            try envelope.write(into: &target)
        } catch MessageError.invalidField {
            let tokens = [envelope.account, envelope.escrowID, envelope.messageDigest].compactMap { $0 }
                + envelope.recipients.flatMap { $0.parameters.map(\.value) }
            precondition(!tokens.allSatisfy(Envelope.isToken), "write refused an envelope whose values are all tokens")
            return 0
        } catch {
            preconditionFailure("write threw \(error)")
        }
        precondition(target.fields.filter { !HeaderSection.isEnvelopeField($0) } == others, "write changed other fields")
        let reparsed = try! HeaderSection.scan(target.bytes[...])
        precondition(reparsed.header.fields == target.fields && reparsed.header.separator == target.separator && reparsed.bodyStart == target.bytes.count, "written fields do not parse as written")
        let back: Envelope?
        do { back = try Envelope.read(from: target) } catch {
            preconditionFailure("the written envelope does not read: \(error)")
        }
        precondition(back == envelope, "the written envelope reads back differently: \(envelope) -> \(String(describing: back))")
    }
    return 0
}
