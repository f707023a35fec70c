import Foundation
// Reading the KEY property in its many spellings:
//   vCard 4:  KEY;MEDIATYPE=application/pgp-keys:data:application/pgp-keys;base64,<b64>
//             KEY:data:application/pgp-keys,<percent-encoded ASCII armor>
//             KEY;MEDIATYPE=application/pkix-cert:data:application/pkix-cert;base64,<DER>
//   vCard 3:  KEY;TYPE=PGP;ENCODING=b:<b64>     KEY;TYPE=X509;ENCODING=b:<b64>
//   2.1:      KEY;PGP;BASE64:<b64>
// plus armored keys or PEM certificates pasted as text.
//
// A KEY that is any other URI (http:, https:, ldap:, openpgp4fpr:, ...) is ignored
// without error: we never fetch keys, because fetching at send time would tell the
// network whom the user writes to and let whoever answers choose the key.
import SLMessage

enum KeyProperty {
    enum Decoded {
        case pgp(PGPKeyRef)
        case certificate(SMIMECertificateRef)
        case ignored
    }

    private enum Kind { case pgp, certificate }

    static func decode(_ p: VCardProperty) throws -> Decoded {
        // Text-unescaped, because some writers escape the comma of a data: URI.
        let value = p.text.trimmingSpaces
        var mediaType = p.parameter("MEDIATYPE").first
        let bytes: [UInt8]
        if p.parameter("ENCODING").contains(where: { ["b", "base64"].contains($0.lowercased()) }) {
            bytes = try base64(value)
        } else if value.lowercased().hasPrefix("data:") {
            let uri = try dataURI(value)
            mediaType = uri.mediaType ?? mediaType
            bytes = uri.data
        } else if hasURIScheme(value) {
            return .ignored
        } else if value.contains("-----BEGIN") {
            bytes = Array(value.utf8)
        } else if value.isEmpty {
            throw KeyMaterialError("the value is empty")
        } else if declaredKind(mediaType: mediaType, types: p.parameter("TYPE")) != nil {
            // vCard 3 writers that forgot ENCODING=b.
            bytes = try base64(value)
        } else {
            throw KeyMaterialError("the value is not a data: URI, base64 with ENCODING=b, or an armored key")
        }
        let kind = declaredKind(mediaType: mediaType, types: p.parameter("TYPE")) ?? sniff(bytes)
        switch kind {
        case .pgp?: return .pgp(try PGPKeyRef(armoredOrBinary: bytes))
        case .certificate?: return .certificate(try SMIMECertificateRef(derOrPEM: bytes))
        case nil:
            // Some other declared kind of key (SSH, say) is none of our business.
            if mediaType != nil { return .ignored }
            throw KeyMaterialError("cannot tell what kind of key this is; add MEDIATYPE=application/pgp-keys or application/pkix-cert")
        }
    }

    private static func declaredKind(mediaType: String?, types: [String]) -> Kind? {
        let names = ([mediaType].compactMap { $0 } + types).map {
            ($0.split(separator: ";").first.map(String.init) ?? "").trimmingSpaces.lowercased()
        }
        for name in names {
            switch name {
            case "application/pgp-keys", "application/pgp-key", "application/pgp", "pgp": return .pgp
            case "application/pkix-cert", "application/x-x509-user-cert", "x509": return .certificate
            default: continue
            }
        }
        return nil
    }

    /// What the bytes look like when the card does not say.
    private static func sniff(_ bytes: [UInt8]) -> Kind? {
        if bytes.hasBytePrefix("-----BEGIN PGP") { return .pgp }
        if bytes.hasBytePrefix("-----BEGIN CERTIFICATE") { return .certificate }
        guard let first = bytes.first else { return nil }
        if first == 0x30 { return .certificate }  // DER SEQUENCE
        if first & 0x80 != 0 { return .pgp }      // OpenPGP packet header
        return nil
    }

    /// RFC 3986 scheme ":" — how a URI starts.
    private static func hasURIScheme(_ s: String) -> Bool {
        guard let colon = s.firstIndex(of: ":"), colon != s.startIndex else { return false }
        let scheme = s[..<colon].unicodeScalars
        guard let first = scheme.first, ("a"..."z").contains(first) || ("A"..."Z").contains(first) else {
            return false
        }
        return scheme.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || "+-.".unicodeScalars.contains($0)
        }
    }

    /// RFC 2397: data:[<mediatype>][;base64],<data>
    static func dataURI(_ s: String) throws -> (mediaType: String?, data: [UInt8]) {
        let rest = s.dropFirst(5)
        guard let comma = rest.firstIndex(of: ",") else {
            throw KeyMaterialError("data: URI has no ',' before its data")
        }
        let header = rest[..<comma].split(separator: ";", omittingEmptySubsequences: false).map { String($0).trimmingSpaces }
        let isBase64 = header.count > 1 && header.last?.lowercased() == "base64"
        let mediaType = header.first.flatMap { $0.contains("/") ? $0 : nil }
        let payload = rest[rest.index(after: comma)...]
        return (mediaType, isBase64 ? try base64(String(payload)) : try percentDecode(payload))
    }

    /// Strict base64, with whitespace allowed anywhere (folding leaves some behind).
    static func base64(_ s: String) throws -> [UInt8] {
        let compact = s.utf8.filter { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D && $0 != 0x0A }
        guard let data = TransferDecoding.base64(compact, strict: true), !data.isEmpty else {
            throw KeyMaterialError("key data is not valid base64")
        }
        return data
    }

    private static func percentDecode(_ s: Substring) throws -> [UInt8] {
        guard let bytes = TransferDecoding.percentDecoded(s.utf8, strict: true) else {
            throw KeyMaterialError("data: URI has a bad %-escape")
        }
        return bytes
    }
}

/// Unwrapped base64 for data: URIs (vCard folds the line itself).
enum Base64 {
    static func encode(_ data: [UInt8]) -> String { Data(data).base64EncodedString() }
}
