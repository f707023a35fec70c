@testable import SLTransport

/// MTA-STS policy text (SLTransport/MTASTS.swift: STSPolicy(parsing:)), the body
/// a domain serves at https://mta-sts.DOMAIN/.well-known/mta-sts.txt, and the
/// _mta-sts TXT record (STSRecord(parsing:)). Invariants: never traps; a policy
/// parsed, written back as its report lines, parses to the same policy; its mx
/// patterns are patterns and its max_age from 0 (RFC 8461: non-negative) to a year; a record parsed has an
/// id of 1-32 letters and digits.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let policy = try? STSPolicy(parsing: bytes) {
        precondition((0...STSPolicy.maximumAge).contains(policy.maxAge), "max_age \(policy.maxAge)")
        precondition(policy.mx.allSatisfy(STSPolicy.isPattern), "an mx that is not a pattern")
        precondition(!policy.mx.isEmpty || policy.mode == .none, "no mx in mode \(policy.mode)")
        let written = Array(policy.reportLines.joined(separator: "\r\n").utf8)
        precondition((try? STSPolicy(parsing: written)) == policy, "a policy written back parses otherwise")
        for host in ["mx.example", "a.b.example", policy.mx.first ?? ""] { _ = policy.matches(host) }
    }
    if let record = STSRecord(parsing: String(decoding: bytes, as: UTF8.self)) {
        precondition((1...32).contains(record.id.utf8.count) && record.id.utf8.allSatisfy(STSSyntax.isAlphanumeric), "MTA-STS id \(record.id)")
    }
    return 0
}
