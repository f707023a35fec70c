internal import CResolv
import Foundation

/// The records of one type in a DNS reply, and whether the resolver vouched for
/// them (the AD bit). The reply is attacker input until proven otherwise: every
/// length is checked against the buffer before anything is read.
struct DNSAnswer {
    /// nil when the name exists without records of the type (NODATA).
    var records: [DNSResolver.Record]?
    /// The reply's AD bit. Means "DNSSEC-secure" only from a trusted validating
    /// resolver; `DNSResolver.lookup` clears it for any other.
    var authenticated: Bool

    /// Octets of a DNS message header (RFC 1035 4.1.1).
    static let headerLength = 12

    /// True when `message` starts with a response header (QR set) whose AD bit
    /// (RFC 4035 3.2.3) is set.
    static func headerSaysAuthenticated(_ message: [UInt8]) -> Bool {
        guard message.count >= headerLength else { return false }
        let isResponse = message[2] & 0x80 != 0
        let ad = message[3] & 0x20 != 0
        return isResponse && ad
    }

    /// Parses a whole reply to a question for `name` of `type`: the records of that
    /// type in the answer section (others, such as CNAME or RRSIG, are skipped).
    /// Throws `DNSError.invalid` for a message that is not a well-formed reply.
    static func parse(_ message: [UInt8], name: String, type: UInt16) throws -> DNSAnswer {
        guard message.count >= headerLength, message.count <= 65_535 else {
            throw DNSError.invalid("\(name): malformed DNS answer")
        }
        guard message[2] & 0x80 != 0 else { throw DNSError.invalid("\(name): the DNS reply is not a response") }
        // ns_msg points into the buffer: parse within one borrow of it.
        let records: [DNSResolver.Record] = try message.withUnsafeBufferPointer { buf in
            var msg = ns_msg()
            guard ns_initparse(buf.baseAddress!, Int32(buf.count), &msg) == 0 else {
                throw DNSError.invalid("\(name): malformed DNS answer")
            }
            var out: [DNSResolver.Record] = []
            for i in 0..<sl_ns_msg_count(&msg, ns_s_an) {
                var rr = ns_rr()
                guard ns_parserr(&msg, ns_s_an, i, &rr) == 0 else { throw DNSError.invalid("\(name): malformed DNS answer") }
                guard rr.type == type, rr.rr_class == UInt16(ns_c_in.rawValue), let rdata = rr.rdata else { continue }
                let offset = rdata - buf.baseAddress!
                let end = offset + Int(rr.rdlength)
                guard offset >= 0, end <= buf.count else { throw DNSError.invalid("\(name): malformed DNS answer") }
                out.append(DNSResolver.Record(message: message, rdataOffset: offset, rdata: Array(message[offset..<end])))
            }
            return out
        }
        return DNSAnswer(records: records.isEmpty ? nil : records, authenticated: headerSaysAuthenticated(message))
    }
}
