import SLMessage
internal import SLOpenSSL

/// What names a message across runs, whatever later stages make of it: SHA-256 of
/// its octets as a stage took it (header section and body), in hex. sl-classify
/// stamps it into the routing (`X-SL-Message-Digest`) and sl-deliver makes one for
/// unrouted input, so that the delivery record recognises the same input fed again,
/// even without a Message-ID and after encryption or sealing made new octets of it.
public enum MessageDigest {
    public static func of(_ message: Message) throws -> String {
        let digest = try SHA256Stream()
        try digest.update(message.header.bytes[...])
        try message.body.forEachChunk { try digest.update($0) }
        return hex(try digest.finish()).lowercased()
    }
}
