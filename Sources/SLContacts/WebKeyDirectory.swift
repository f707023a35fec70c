// The OpenPGP Web Key Directory (draft-koch-openpgp-webkey-service): where a
// domain publishes its users' keys over HTTPS. The address of a key is computed
// here, without a network; HTTPSClient fetches it.
import SLMessage
internal import SLOpenSSL

public enum WebKeyDirectory {
    /// The two places a key is looked up, in the draft's order: the advanced method
    /// (on the openpgpkey subdomain) first; the direct method only when that
    /// subdomain does not exist.
    public struct Locations: Sendable, Equatable {
        public let advanced: String
        public let direct: String
    }

    /// The draft's section 3.1: the local part with ASCII letters lowercased (other
    /// characters unchanged), hashed with SHA-1 and encoded in z-base-32; the domain
    /// lowercased; the unchanged local part percent-escaped in `?l=`.
    public static func locations(for address: String) throws -> Locations {
        guard let at = address.lastIndex(of: "@"), at != address.startIndex, address.index(after: at) != address.endIndex else {
            throw ContactsError(.usage, "\"\(address)\" is not an email address (expected local@domain)")
        }
        let local = String(address[..<at])
        let domain = String(address[address.index(after: at)...])
        let ascii: String
        do { ascii = try IDNA.toASCII(domain).lowercased() } catch {
            throw ContactsError(.usage, "the domain of \"\(address)\" is not a valid domain name")
        }
        guard ascii.utf8.allSatisfy({ isDomainByte($0) }) else {
            throw ContactsError(.usage, "the domain of \"\(address)\" is not a valid domain name")
        }
        let hash = zBase32(try Digest.sha1(Array(asciiLowercased(local).utf8)))
        let query = "?l=" + percentEscaped(local)
        return Locations(advanced: "https://openpgpkey.\(ascii)/.well-known/openpgpkey/\(ascii)/hu/\(hash)\(query)",
                         direct: "https://\(ascii)/.well-known/openpgpkey/hu/\(hash)\(query)")
    }

    /// z-base-32 (the draft's reference, RFC 6189 5.1.6 alphabet), most significant
    /// bit first, without padding: 160 bits of SHA-1 are 32 characters.
    public static func zBase32(_ data: [UInt8]) -> String {
        let alphabet = Array("ybndrfg8ejkmcpqxot1uwisza345h769".utf8)
        var out: [UInt8] = []
        var buffer = 0, bits = 0
        for byte in data {
            buffer = (buffer << 8) | Int(byte)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[(buffer >> (bits - 5)) & 31])
                bits -= 5
            }
            buffer &= (1 << bits) - 1
        }
        if bits > 0 { out.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func asciiLowercased(_ s: String) -> String {
        String(decoding: s.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
    }

    /// RFC 3986 unreserved characters stay; every other octet is %XX.
    static func percentEscaped(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            let unreserved = (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39)
                || b == 0x2D || b == 0x2E || b == 0x5F || b == 0x7E
            out += unreserved ? String(UnicodeScalar(b)) : "%" + String(b, radix: 16, uppercase: true).leftPadded(2)
        }
        return out
    }

    private static func isDomainByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x2E
    }
}

extension String {
    fileprivate func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
