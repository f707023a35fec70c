// A correspondent's certificate taken from a message they signed: the usual way to
// get someone's S/MIME certificate is to ask them for a signed mail. The signature
// is verified over the content before the certificate is believed to be theirs,
// and the certificate must name the address it is saved for.
internal import COpenSSL
import SLMessage
import SLOpenSSL

/// The message is not a signed message we can take a certificate from (exit 65).
public struct SignedMessageError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public enum SignedMessageCertificate {
    /// The certificate of the signer of `message` (an RFC 5322 message, optionally
    /// after an mbox `From ` line): multipart/signed with application/pkcs7-signature,
    /// or application/pkcs7-mime; smime-type=signed-data. The signature must verify
    /// over the content and the signer's certificate must name `address`. The chain is
    /// not checked here (sl-encrypt-smime checks it, against its trust store, when it
    /// encrypts); `certificates` are the others the message carried, for that check.
    public static func signer(of message: Bytes, for address: String) throws -> (certificate: X509Certificate, certificates: [X509Certificate]) {
        var bytes = message[...]
        if bytes.hasBytePrefix("From ") { bytes = bytes[((bytes.firstIndex(of: 0x0A) ?? bytes.endIndex - 1) + 1)...] }
        let entity: MIMEEntity
        do { entity = try MIMEEntity.parse(Array(bytes)) } catch {
            throw SignedMessageError("the message cannot be read: \(error)")
        }
        let type = entity.contentType
        let signature: Bytes
        var content: Bytes?
        switch type.mimeType {
        case "multipart/signed":
            let proto = (type.parameter("protocol") ?? "").lowercased()
            guard proto == "application/pkcs7-signature" || proto == "application/x-pkcs7-signature" else {
                throw SignedMessageError("the message is signed with \(proto.isEmpty ? "an unnamed protocol" : proto), not S/MIME (application/pkcs7-signature)")
            }
            guard entity.parts.count == 2 else {
                throw SignedMessageError("multipart/signed has \(entity.parts.count) parts, not the content and the signature")
            }
            // RFC 8551 3.1.1: the signature covers the first part in canonical form, CRLF line ends.
            content = CRLF.canonical(entity.parts[0].serialized())
            signature = try decoded(entity.parts[1])
        case "application/pkcs7-mime", "application/x-pkcs7-mime":
            let smimeType = (type.parameter("smime-type") ?? "").lowercased()
            guard smimeType == "signed-data" else {
                throw SignedMessageError("the message is application/pkcs7-mime with smime-type=\(smimeType.isEmpty ? "(none)" : smimeType), not signed-data; ask for a signed, unencrypted message")
            }
            signature = try decoded(entity)
        default:
            throw SignedMessageError("the message is \(type.mimeType), not S/MIME signed (multipart/signed with application/pkcs7-signature, or application/pkcs7-mime; smime-type=signed-data)")
        }
        return try verify(signature, content: content, address: address)
    }

    private static func decoded(_ part: MIMEEntity) throws -> Bytes {
        do { return try part.decodedBody() } catch { throw SignedMessageError("the signature part cannot be decoded: \(error)") }
    }

    private static func verify(_ der: Bytes, content: Bytes?, address: String) throws -> (certificate: X509Certificate, certificates: [X509Certificate]) {
        ERR_clear_error()
        let cms: OpaquePointer? = der.withUnsafeBytes { buffer in
            guard let bio = MemoryBIO(reading: buffer) else { return nil }
            return d2i_CMS_bio(bio.handle, nil)
        }
        guard let cms else { throw SignedMessageError("the signature is not a CMS structure (\(OpenSSLError("d2i_CMS_bio").description))") }
        defer { CMS_ContentInfo_free(cms) }
        guard OBJ_obj2nid(CMS_get0_type(cms)) == NID_pkcs7_signed else {
            throw SignedMessageError("the CMS structure is not SignedData")
        }
        guard let store = X509_STORE_new() else { throw OpenSSLError("cannot create a trust store") }
        defer { X509_STORE_free(store) }
        // The signature over the content, with the certificates it carries; not the chain.
        let flags = UInt32(CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY)
        let verified: Int32
        if let content {
            verified = content.withUnsafeBytes { buffer -> Int32 in
                guard let bio = MemoryBIO(reading: buffer) else { return 0 }
                return CMS_verify(cms, nil, store, bio.handle, nil, flags)
            }
        } else {
            verified = CMS_verify(cms, nil, store, nil, nil, flags)
        }
        guard verified == 1 else {
            let why = OpenSSLError("verification failed").description
            throw SignedMessageError("the signature does not verify over the message (\(why)); ask the contact for a new signed message, saved unchanged")
        }
        let signers = CMS_get0_signers(cms)
        defer { sl_x509_stack_free(signers) }
        var candidates: [X509Certificate] = []
        for i in 0..<sl_x509_stack_count(signers) {
            if let x = sl_x509_stack_at(signers, i) { candidates.append(X509Certificate(retaining: x)) }
        }
        guard !candidates.isEmpty else { throw SignedMessageError("the signature names no signer certificate") }
        let wanted = address.lowercased()
        let matching = candidates.filter { $0.emailAddresses.contains(wanted) }
        guard matching.count == 1 else {
            if matching.isEmpty {
                let named = Set(candidates.flatMap(\.emailAddresses)).sorted()
                throw SignedMessageError("the signer's certificate is for \(named.isEmpty ? "no email address" : named.joined(separator: ", ")), not \(wanted)")
            }
            throw SignedMessageError("\(matching.count) signers' certificates name \(wanted); cannot tell which is the contact's")
        }
        var others: [X509Certificate] = []
        if let all = CMS_get1_certs(cms) {
            defer { sl_x509_stack_free_all(all) }
            for i in 0..<sl_x509_stack_count(all) {
                if let x = sl_x509_stack_at(all, i) { others.append(X509Certificate(retaining: x)) }
            }
        }
        return (matching[0], others)
    }
}
