// Key material found in address books: enough OpenPGP packet parsing to name a key by
// its fingerprint (RFC 4880 4.2, 12.2; RFC 9580 4.2, 5.5.4); X.509 certificates are
// SLOpenSSL's. The bytes come from files anyone might have edited or exported, so
// every length is checked against what is actually there before it is used.
import SLMessage
internal import SLOpenSSL

/// Key data that is not what it claims to be: truncated, garbage, or an unsupported kind.
public struct KeyMaterialError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Runs an OpenSSL reading of key data and reports its failure as the data's: the
/// address book's reader turns a KeyMaterialError into an error on the card's line.
func readingKeyMaterial<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as OpenSSLError { throw KeyMaterialError(error.description) }
}

enum OpenPGP {
    struct Packet {
        var tag: Int
        var body: [UInt8]
    }

    /// Splits a packet sequence, checking every header and length. Partial body lengths
    /// are reassembled; an old-format indeterminate length runs to the end.
    static func packets(_ data: [UInt8]) throws -> [Packet] {
        var packets: [Packet] = []
        var i = 0
        func need(_ n: Int, _ what: String) throws {
            guard n >= 0, data.count - i >= n else {
                throw KeyMaterialError("OpenPGP data is truncated: \(what) at offset \(i) needs \(n) octets, \(data.count - i) remain")
            }
        }
        func bigEndian(_ n: Int) -> Int {
            var v = 0
            for k in 0..<n { v = v << 8 | Int(data[i + k]) }
            i += n
            return v
        }
        while i < data.count {
            let header = data[i]
            guard header & 0x80 != 0 else {
                throw KeyMaterialError("not OpenPGP data: octet 0x\(hex([header])) at offset \(i) is not a packet header")
            }
            i += 1
            var body: [UInt8] = []
            let tag: Int
            if header & 0x40 != 0 {
                tag = Int(header & 0x3F)
                // New format: one, two, five octet lengths, or 2^n-octet partial chunks.
                while true {
                    try need(1, "packet length")
                    let first = Int(data[i])
                    let length: Int
                    var partial = false
                    switch first {
                    case 0..<192:
                        i += 1
                        length = first
                    case 192..<224:
                        try need(2, "packet length")
                        length = (first - 192) << 8 + Int(data[i + 1]) + 192
                        i += 2
                    case 255:
                        try need(5, "packet length")
                        i += 1
                        length = bigEndian(4)
                    default:
                        i += 1
                        length = 1 << (first & 0x1F)
                        partial = true
                    }
                    try need(length, "packet body")
                    body += data[i..<(i + length)]
                    i += length
                    if !partial { break }
                }
            } else {
                tag = Int((header >> 2) & 0x0F)
                let lengthType = Int(header & 0x03)
                let length: Int
                if lengthType == 3 {
                    length = data.count - i
                } else {
                    let octets = 1 << lengthType
                    try need(octets, "packet length")
                    length = bigEndian(octets)
                }
                try need(length, "packet body")
                body = Array(data[i..<(i + length)])
                i += length
            }
            guard tag != 0 else { throw KeyMaterialError("OpenPGP packet with reserved tag 0") }
            packets.append(Packet(tag: tag, body: body))
        }
        return packets
    }

    /// The fingerprint of the primary key of a transferable public key, uppercase hex.
    /// v4: SHA-1 over 0x99, two-octet length, body. v6 (RFC 9580): SHA-256 over 0x9B,
    /// four-octet length, body. v5 (LibrePGP, some GnuPG 2.3+ keys) like v6 with 0x9A.
    static func primaryKeyFingerprint(_ data: [UInt8]) throws -> String {
        let all = try packets(data)
        guard let primary = all.first else { throw KeyMaterialError("OpenPGP key data is empty") }
        switch primary.tag {
        case 6: break
        case 5:
            throw KeyMaterialError("this is a SECRET key; put only the public key in the address book (gpg --export, not --export-secret-keys)")
        default:
            throw KeyMaterialError("OpenPGP data does not start with a public key (first packet has tag \(primary.tag)); export it with gpg --export")
        }
        let body = primary.body
        guard let version = body.first else { throw KeyMaterialError("empty OpenPGP public-key packet") }
        switch version {
        case 4:
            guard body.count >= 6 else { throw KeyMaterialError("OpenPGP v4 public-key packet is too short") }
            guard body.count <= 0xFFFF else { throw KeyMaterialError("OpenPGP v4 public-key packet is too long to fingerprint") }
            let n = body.count
            return hex(try readingKeyMaterial { try Digest.sha1([0x99, UInt8(n >> 8), UInt8(n & 0xFF)] + body) })
        case 5, 6:
            // version, creation time, algorithm, four-octet key material length
            guard body.count >= 10 else { throw KeyMaterialError("OpenPGP v\(version) public-key packet is too short") }
            let n = UInt32(truncatingIfNeeded: body.count)
            let prefix: [UInt8] = [version == 6 ? 0x9B : 0x9A,
                                   UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
            return hex(try readingKeyMaterial { try Digest.sha256(prefix + body) })
        default:
            throw KeyMaterialError("OpenPGP v\(version) keys are not supported (v4 and v6 are)")
        }
    }

    /// Removes ASCII armor (RFC 4880 6.2 / RFC 9580 6.2). The CRC-24 line is ignored:
    /// RFC 9580 makes it optional and the packet walk detects damage anyway.
    static func dearmor(_ text: [UInt8]) throws -> [UInt8] {
        let lines = String(lenientUTF8: text).split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
            .map { $0.trimmingCharacters(in: " \t\r") }
        guard let begin = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN PGP ") }) else {
            throw KeyMaterialError("no -----BEGIN PGP PUBLIC KEY BLOCK----- line in the armored key")
        }
        let kind = lines[begin]
        if kind.contains("PRIVATE KEY") || kind.contains("SECRET KEY") {
            throw KeyMaterialError("this is a SECRET key; put only the public key in the address book (gpg --export --armor)")
        }
        guard kind == "-----BEGIN PGP PUBLIC KEY BLOCK-----" else {
            throw KeyMaterialError("armored block \"\(kind)\" is not a public key block")
        }
        var i = begin + 1
        // Armor headers ("Comment: ...") run up to a blank line. Some tools omit the
        // blank line when there are no headers, so a line without ": " ends them too.
        while i < lines.count, !lines[i].isEmpty, lines[i].contains(": ") { i += 1 }
        if i < lines.count && lines[i].isEmpty { i += 1 }
        var base64: [UInt8] = []
        var ended = false
        while i < lines.count {
            let line = lines[i]
            if line.hasPrefix("-----END PGP PUBLIC KEY BLOCK-----") { ended = true; break }
            if line.hasPrefix("=") && line.count == 5 { i += 1; continue }  // CRC-24
            base64 += line.utf8
            i += 1
        }
        guard ended else { throw KeyMaterialError("armored key has no -----END PGP PUBLIC KEY BLOCK----- line (truncated?)") }
        guard let binary = TransferDecoding.base64(base64, strict: true), !binary.isEmpty else {
            throw KeyMaterialError("armored key body is not valid base64")
        }
        return binary
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = self
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

/// Uppercase hex, the form fingerprints are compared in.
func hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    let digits = Array("0123456789ABCDEF".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}
