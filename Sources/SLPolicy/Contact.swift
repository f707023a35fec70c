// What the classifier needs to know about a correspondent, and the validated key
// references it is made of. Keys are checked when they are read, so a damaged key in
// an address book is an error the user sees at load time, never a silent downgrade to
// a less secure way of sending.
import SLMessage
internal import SLOpenSSL

/// An OpenPGP public key (RFC 9580 10.1 transferable public key, binary).
public struct PGPKeyRef: Sendable, Equatable {
    /// Primary-key fingerprint, uppercase hex (40 digits for v4, 64 for v6).
    public var fingerprint: String
    public var keyData: [UInt8]

    /// Validates binary key data and computes its fingerprint.
    public init(keyData: [UInt8]) throws {
        self.fingerprint = try OpenPGP.primaryKeyFingerprint(keyData)
        self.keyData = keyData
    }

    /// Accepts an ASCII-armored key as well as binary packets. Armor is recognised by
    /// its "-----" line after any leading whitespace; everything else is read as packets.
    public init(armoredOrBinary data: [UInt8]) throws {
        let text = data.drop { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A }
        if text.hasBytePrefix("-----") {
            try self.init(keyData: OpenPGP.dearmor(data))
        } else {
            try self.init(keyData: data)
        }
    }
}

/// An S/MIME recipient certificate.
public struct SMIMECertificateRef: Sendable, Equatable {
    /// SHA-256 over the DER, uppercase hex without colons.
    public var sha256Fingerprint: String
    public var der: [UInt8]
    /// rfc822Name subjectAltNames and subject emailAddress, lowercased.
    public var emailAddresses: [String]

    /// Accepts DER or PEM.
    public init(derOrPEM data: [UInt8]) throws {
        (der, sha256Fingerprint, emailAddresses) = try readingKeyMaterial {
            let certificate = try X509Certificate(derOrPEM: data)
            return (try certificate.der(), hex(try certificate.sha256Fingerprint()), certificate.emailAddresses)
        }
    }
}

/// A question and answer agreed with a recipient for escrowed delivery.
public struct EscrowQuestion: Sendable, Equatable {
    public var question: String
    /// Stored exactly as written; any normalisation is the escrow code's business.
    public var answer: String
    public init(question: String, answer: String) {
        self.question = question
        self.answer = answer
    }
}

public struct Contact: Sendable, Equatable {
    public var name: String?
    /// From EMAIL properties, lowercased.
    public var addresses: [String]
    public var pgpKeys: [PGPKeyRef]
    public var smimeCertificates: [SMIMECertificateRef]
    public var escrow: EscrowQuestion?
    /// What the card's `X-SL-SMIME-GCM` says of the recipient's client: true, it reads
    /// AES-GCM (RFC 5084) S/MIME; false, it does not, so CBC must be used; nil, the
    /// card does not say, and `smime_cipher` decides.
    public var smimeReadsGCM: Bool?
    /// `X-SL-PGP-FINGERPRINT`, uppercase hex without spaces. Only its form is checked
    /// here: it may name a key held in a keyring rather than in this card.
    public var pinnedPGPFingerprint: String?

    public init(name: String? = nil, addresses: [String] = [], pgpKeys: [PGPKeyRef] = [],
                smimeCertificates: [SMIMECertificateRef] = [], escrow: EscrowQuestion? = nil,
                smimeReadsGCM: Bool? = nil, pinnedPGPFingerprint: String? = nil) {
        self.name = name
        self.addresses = addresses.map { $0.lowercased() }
        self.pgpKeys = pgpKeys
        self.smimeCertificates = smimeCertificates
        self.escrow = escrow
        self.smimeReadsGCM = smimeReadsGCM
        self.pinnedPGPFingerprint = pinnedPGPFingerprint
    }

    /// Any PGP key, S/MIME certificate, or escrow question and answer.
    public var hasEncryptionData: Bool {
        !pgpKeys.isEmpty || !smimeCertificates.isEmpty || escrow != nil
    }
}

extension Contact {
    /// Reads a contact from a card. Properties we do not use are ignored; properties we
    /// do use must be valid, and errors carry the property's line.
    public init(vCard card: VCard) throws {
        self.init()
        name = card.properties(named: "FN").first.map { $0.text.trimmingSpaces }
        for p in card.properties(named: "EMAIL") {
            var address = p.text.trimmingSpaces
            if address.lowercased().hasPrefix("mailto:") { address = String(address.dropFirst(7)) }
            guard Contact.looksLikeAddress(address) else {
                throw VCardError(line: p.line, "EMAIL \"\(address)\" is not an email address (expected local@domain)")
            }
            address = address.lowercased()
            if !addresses.contains(address) { addresses.append(address) }
        }
        for p in card.properties(named: "KEY") {
            do {
                switch try KeyProperty.decode(p) {
                case .pgp(let key):
                    if !pgpKeys.contains(where: { $0.fingerprint == key.fingerprint }) { pgpKeys.append(key) }
                case .certificate(let cert):
                    if !smimeCertificates.contains(where: { $0.sha256Fingerprint == cert.sha256Fingerprint }) {
                        smimeCertificates.append(cert)
                    }
                case .ignored:
                    break
                }
            } catch let error as KeyMaterialError {
                throw VCardError(line: p.line, "KEY: \(error.message)")
            }
        }
        escrow = try Contact.escrow(in: card)
        if let p = try Contact.single("X-SL-SMIME-GCM", in: card) {
            switch p.text.trimmingSpaces.lowercased() {
            case "no", "false", "0": smimeReadsGCM = false
            case "yes", "true", "1": smimeReadsGCM = true
            default: throw VCardError(line: p.line, "X-SL-SMIME-GCM must be yes or no, not \"\(p.text)\"")
            }
        }
        if let p = try Contact.single("X-SL-PGP-FINGERPRINT", in: card) {
            let digits = p.text.filter { $0 != " " && $0 != ":" && $0 != "\t" }.uppercased()
            guard digits.count == 40 || digits.count == 64,
                  digits.allSatisfy({ ("0"..."9").contains($0) || ("A"..."F").contains($0) }) else {
                throw VCardError(line: p.line, "X-SL-PGP-FINGERPRINT must be a 40- or 64-digit hex fingerprint, as gpg --fingerprint prints it")
            }
            pinnedPGPFingerprint = digits
        }
    }

    /// The contact as a vCard 4 card that `init(vCard:)` reads back to the same contact,
    /// except that a contact without a name gets FN = its first address (RFC 6350
    /// requires FN), which then reads back as the name.
    public var vCard: VCard {
        var props: [VCardProperty] = [VCardProperty(name: "VERSION", value: "4.0")]
        // FN is the one property RFC 6350 requires.
        props.append(VCardProperty(name: "FN", text: name ?? addresses.first ?? "Unknown"))
        for address in addresses { props.append(VCardProperty(name: "EMAIL", text: address)) }
        for key in pgpKeys {
            props.append(VCardProperty(name: "KEY", parameters: ["MEDIATYPE": ["application/pgp-keys"]],
                                       value: "data:application/pgp-keys;base64," + Base64.encode(key.keyData)))
        }
        for cert in smimeCertificates {
            props.append(VCardProperty(name: "KEY", parameters: ["MEDIATYPE": ["application/pkix-cert"]],
                                       value: "data:application/pkix-cert;base64," + Base64.encode(cert.der)))
        }
        if let pin = pinnedPGPFingerprint { props.append(VCardProperty(name: "X-SL-PGP-FINGERPRINT", text: pin)) }
        if let gcm = smimeReadsGCM { props.append(VCardProperty(name: "X-SL-SMIME-GCM", value: gcm ? "yes" : "no")) }
        if let escrow {
            props.append(VCardProperty(name: "X-SL-ESCROW-QUESTION", text: escrow.question))
            props.append(VCardProperty(name: "X-SL-ESCROW-ANSWER", text: escrow.answer))
        }
        return VCard(properties: props)
    }

    private static func single(_ name: String, in card: VCard) throws -> VCardProperty? {
        let found = card.properties(named: name)
        if found.count > 1 {
            throw VCardError(line: found[1].line, "\(name) appears more than once in the vCard that begins on line \(card.line); keep one")
        }
        return found.first
    }

    private static func escrow(in card: VCard) throws -> EscrowQuestion? {
        let q = try single("X-SL-ESCROW-QUESTION", in: card)
        let a = try single("X-SL-ESCROW-ANSWER", in: card)
        switch (q, a) {
        case (nil, nil):
            return nil
        case let (q?, a?):
            guard !q.text.trimmingSpaces.isEmpty, !a.text.isEmpty else {
                throw VCardError(line: q.line, "escrow question and answer must both be non-empty")
            }
            return EscrowQuestion(question: q.text, answer: a.text)
        case let (q?, nil):
            throw VCardError(line: q.line, "X-SL-ESCROW-QUESTION has no X-SL-ESCROW-ANSWER; add the answer or remove the question")
        case let (nil, a?):
            throw VCardError(line: a.line, "X-SL-ESCROW-ANSWER has no X-SL-ESCROW-QUESTION; add the question or remove the answer")
        }
    }

    /// A sanity check, not RFC 5321 validation: one "@" with text on both sides and
    /// nothing that could not appear in an address we would look up.
    static func looksLikeAddress(_ s: String) -> Bool {
        guard let at = s.lastIndex(of: "@"), at != s.startIndex, s.index(after: at) != s.endIndex else { return false }
        return !s.unicodeScalars.contains { $0.value <= 0x20 || $0.value == 0x7F || "<>(),;\"".unicodeScalars.contains($0) }
    }
}
