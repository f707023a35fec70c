@testable import SLTransport

/// DNS answers (SLTransport/DNSAnswer.swift: DNSAnswer.parse over libresolv's
/// ns_initparse/ns_parserr; then what each lookup makes of the records:
/// DNSResolver.mxAnswer with dn_expand, DNSResolver.txtText and the MTA-STS and
/// TLSRPT records read from TXT, DNSResolver.tlsaRecords). The first input octet
/// picks the question type (MX, TXT, TLSA, A, AAAA), the rest is the reply as the
/// server sent it. Invariants: never traps; every record's rdata is the octets of
/// the message at its offset; the AD bit is read from the header alone; MX hosts
/// are host names in preference order; a null MX is a single record; MTA-STS ids
/// are 1-32 letters and digits.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    // RFC 1035 and 6698 type numbers: MX, TXT, TLSA, A, AAAA.
    let types: [UInt16] = [mx, txt, tlsa, 1, 28]
    let type = types[Int(data[0]) % types.count]
    let message = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    guard let answer = try? DNSAnswer.parse(message, name: "fuzz.example", type: type) else { return 0 }
    precondition(answer.authenticated == DNSAnswer.headerSaysAuthenticated(message), "the AD bit is not the header's")
    guard let records = answer.records else { return 0 }
    precondition(!records.isEmpty, "records given as an empty list rather than nil")
    for r in records {
        precondition(r.message == message, "a record holds another message")
        precondition(r.rdataOffset >= DNSAnswer.headerLength && r.rdataOffset + r.rdata.count <= message.count
                     && Array(message[r.rdataOffset..<(r.rdataOffset + r.rdata.count)]) == r.rdata,
                     "a record's rdata is not the message's octets at its offset")
    }
    switch type {
    case mx:
        guard let result = try? Resolver.shared.mxAnswer("fuzz.example", records) else { break }
        switch result {
        case .nullMX:
            precondition(records.count == 1, "a null MX among \(records.count) records")
        case .implicit:
            break
        case .hosts(let hosts):
            precondition(!hosts.isEmpty && hosts.count <= records.count, "\(hosts.count) hosts from \(records.count) records")
            precondition(hosts.allSatisfy { DNSResolver.isHostName($0.name) }, "an MX host that is not a host name")
            precondition(zip(hosts, hosts.dropFirst()).allSatisfy { $0.preference <= $1.preference }, "MX hosts out of preference order")
            precondition(hosts.allSatisfy { (0...65535).contains($0.preference) }, "an MX preference outside 16 bits")
        }
    case txt:
        let texts = records.compactMap { try? DNSResolver.txtText($0.rdata, name: "fuzz.example") }
        if let sts = STSRecord.discover(in: texts) {
            precondition((1...32).contains(sts.id.utf8.count) && sts.id.utf8.allSatisfy(STSSyntax.isAlphanumeric), "MTA-STS id \(sts.id)")
            precondition(STSRecord(parsing: "v=STSv1; id=\(sts.id)") == sts, "an MTA-STS id written back parses otherwise")
        }
        if let rpt = TLSRPTRecord(txt: texts) {
            precondition(!rpt.mailto.isEmpty || !rpt.https.isEmpty, "a TLSRPT record with nowhere to report")
            precondition(rpt.mailto.allSatisfy { !$0.isEmpty && $0.utf8.count <= 254 && !$0.contains("?") }, "a TLSRPT mailto that is no address")
        }
    case tlsa:
        guard case .secure(let tlsa) = DNSResolver.tlsaRecords(records.map(\.rdata), name: "fuzz.example") else {
            preconditionFailure("TLSA records of a secure answer are not secure")
        }
        precondition(tlsa.count == records.filter { $0.rdata.count >= 4 }.count, "TLSA records lost or invented")
        for t in tlsa { _ = t.isUsableForSMTP; _ = t.summary }
    default:
        break
    }
    return 0
}

let mx: UInt16 = 15, txt: UInt16 = 16, tlsa: UInt16 = 52

/// One resolver (res_ninit reads /etc/resolv.conf); nothing is asked of it.
enum Resolver {
    nonisolated(unsafe) static let shared = try! DNSResolver(timeout: 1, attempts: 1)
}
