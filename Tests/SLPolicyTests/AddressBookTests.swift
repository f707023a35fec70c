import Foundation
import Testing
@testable import SLPolicy

@Suite struct AddressBookTests {
    // MARK: OpenPGP keys against GnuPG

    @Test func ed25519KeyFingerprintMatchesGnuPGInEveryVCardSpelling() throws {
        let home = try GnuPGHome()
        let fpr = try home.generate("Bob <bob@example.org>", algorithm: "ed25519", usage: "cert", encryptionSubkey: "cv25519")
        #expect(fpr.count == 40)
        let binary = try home.gpg(["--export", "bob@example.org"])
        let armored = try home.gpg(["--export", "--armor", "bob@example.org"])
        #expect(try PGPKeyRef(keyData: binary).fingerprint == fpr)
        #expect(try PGPKeyRef(armoredOrBinary: armored).fingerprint == fpr)
        #expect(try OpenPGP.dearmor(armored) == binary)
        // primary, user ID, self-signature, subkey, binding signature
        #expect(try OpenPGP.packets(binary).map(\.tag) == [6, 13, 2, 14, 2])

        let b64 = Base64.encode(binary)
        let armorText = String(decoding: armored, as: UTF8.self)
        let cards: [[VCardProperty]] = [
            [VCardProperty(name: "EMAIL", text: "bob@example.org"),
             VCardProperty(name: "KEY", parameters: ["MEDIATYPE": ["application/pgp-keys"]],
                           value: "data:application/pgp-keys;base64," + b64)],
            [VCardProperty(name: "EMAIL", text: "bob2@example.org"),
             VCardProperty(name: "KEY", value: "data:application/pgp-keys," + percentEncode(armored))],
            [VCardProperty(name: "VERSION", value: "3.0"),
             VCardProperty(name: "EMAIL", parameters: ["TYPE": ["INTERNET"]], text: "bob3@example.org"),
             VCardProperty(name: "KEY", parameters: ["TYPE": ["PGP"], "ENCODING": ["b"]], value: b64)],
            [VCardProperty(name: "EMAIL", text: "bob4@example.org"),
             VCardProperty(name: "KEY", parameters: ["TYPE": ["PGP"]], text: armorText)],
            // Undeclared: recognised by its packet header.
            [VCardProperty(name: "EMAIL", text: "bob5@example.org"),
             VCardProperty(name: "KEY", value: "data:;base64," + b64)],
        ]
        let dir = try TemporaryDirectory()
        let file = dir.path + "/bob.vcf"
        try write(cards.map { VCard(properties: $0).serialized() }.joined(), to: file)
        let book = try AddressBook.load(name: "test", path: file)
        #expect(book.contacts.count == 5)
        for address in ["BOB@example.org", "bob2@EXAMPLE.ORG", "bob3@example.org", "bob4@example.org", "bob5@example.org"] {
            let contact = try #require(book.contact(for: address), "\(address)")
            #expect(contact.pgpKeys.map(\.fingerprint) == [fpr], "\(address)")
            #expect(contact.pgpKeys.first?.keyData == binary, "\(address)")
            #expect(contact.hasEncryptionData)
        }
    }

    @Test func everyPacketFramingGivesTheSameFingerprint() throws {
        let home = try GnuPGHome()
        let fpr = try home.generate("Rick <rick@example.org>", algorithm: "rsa2048", usage: "sign", encryptionSubkey: nil)
        let binary = try home.gpg(["--export", "rick@example.org"])
        #expect(try PGPKeyRef(keyData: binary).fingerprint == fpr)
        let packets = try OpenPGP.packets(binary)
        for framing in Framing.allCases {
            let reframed = packets.flatMap { framing.encode(tag: $0.tag, body: $0.body) }
            #expect(try PGPKeyRef(keyData: reframed).fingerprint == fpr, "\(framing)")
            #expect(try OpenPGP.packets(reframed).map(\.body) == packets.map(\.body), "\(framing)")
        }
    }

    @Test func v6FingerprintIsSHA256OverTheV6Prefix() throws {
        // RFC 9580 v6 Ed25519 public-key packet: version, time, algorithm 27, 4-octet
        // key length, 32 octets of key.
        let body: [UInt8] = [6, 0x63, 0x87, 0x7F, 0xE3, 27, 0, 0, 0, 32] + (0..<32).map { UInt8($0 * 7 & 0xFF) }
        let expected = try run("openssl", ["dgst", "-sha256", "-binary"],
                               stdin: [0x9B, 0, 0, 0, UInt8(body.count)] + body)
        let key = try PGPKeyRef(keyData: [0xC6, UInt8(body.count)] + body)
        #expect(key.fingerprint == hex(expected))
        #expect(key.fingerprint.count == 64)
    }

    static let hostileKeys: [(String, [UInt8], String)] = [
        ("empty", [], "empty"),
        ("not a header", [0x00, 0x01], "not OpenPGP"),
        ("old length past the end", [0x99, 0xFF, 0xFF, 4], "truncated"),
        ("old four-octet huge length", [0x9A, 0xFF, 0xFF, 0xFF, 0xFF, 4], "truncated"),
        ("new five-octet huge length", [0xC6, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 4], "truncated"),
        ("new two-octet length cut", [0xC6, 0xC5], "truncated"),
        ("partial chunk past the end", [0xC6, 0xFE, 4, 0, 0], "truncated"),
        ("partial chunk without final length", [0xC6, 0xE1, 4, 0], "truncated"),
        ("header only", [0x99], "truncated"),
        ("reserved tag 0", [0xC0, 0x00], "reserved"),
        ("v4 body too short", [0x98, 0x03, 4, 0, 0], "too short"),
        ("v6 body too short", [0xC6, 0x06, 6, 0, 0, 0, 0, 27], "too short"),
        ("v3 key", [0x98, 0x06, 3, 0, 0, 0, 0, 1], "v3"),
        ("secret key", [0x95, 0x00, 0x06, 4, 0, 0, 0, 0, 22], "SECRET"),
        ("user ID first", [0xCD, 0x03, 0x61, 0x62, 0x63], "does not start with a public key"),
        ("empty key packet", [0xC6, 0x00], "empty"),
    ]

    @Test(arguments: hostileKeys)
    func hostileKeyDataIsAnError(_ label: String, _ data: [UInt8], _ fragment: String) {
        #expect(label.isEmpty == false)
        #expect {
            _ = try PGPKeyRef(keyData: data)
        } throws: { ($0 as? KeyMaterialError)?.message.contains(fragment) == true }
    }

    @Test func truncatedAndMutatedKeysNeverCrash() throws {
        let home = try GnuPGHome()
        try home.generate("Tess <tess@example.org>", algorithm: "ed25519", usage: "cert", encryptionSubkey: nil)
        // Re-framed with new-format headers so packet boundaries are easy to compute.
        let packets = try OpenPGP.packets(try home.gpg(["--export", "tess@example.org"]))
        let binary = packets.flatMap { Framing.newShortest.encode(tag: $0.tag, body: $0.body) }
        let boundaries = Set(packets.indices.map { k in
            packets[...k].reduce(0) { $0 + 2 + $1.body.count + ($1.body.count >= 192 ? 1 : 0) }
        })
        for cut in 1..<binary.count {
            let result = Result { try PGPKeyRef(keyData: Array(binary.prefix(cut))) }
            if case .success = result {
                // Only a cut at a packet boundary leaves a well-framed key.
                #expect(boundaries.contains(cut), "prefix \(cut) accepted")
            }
        }
        var rng = SplitMix(seed: 0x5EED)
        for _ in 0..<3000 {
            var mutated = binary
            for _ in 0...(rng.next() % 4) {
                mutated[Int(rng.next() % UInt64(mutated.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            _ = try? PGPKeyRef(keyData: mutated)
            _ = try? PGPKeyRef(armoredOrBinary: (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        }
        let armored = try home.gpg(["--export", "--armor", "tess@example.org"])
        let text = String(decoding: armored, as: UTF8.self)
        #expect(throws: KeyMaterialError.self) {
            try PGPKeyRef(armoredOrBinary: Array(text.replacingOccurrences(of: "-----END PGP PUBLIC KEY BLOCK-----", with: "").utf8))
        }
        #expect(throws: KeyMaterialError.self) {
            try PGPKeyRef(armoredOrBinary: Array(text.replacingOccurrences(of: "PUBLIC KEY BLOCK", with: "PRIVATE KEY BLOCK").utf8))
        }
        let lines = text.split(separator: "\n")
        let damaged = lines.prefix(lines.count / 2) + ["!!!!"] + lines.suffix(lines.count / 2)
        #expect(throws: KeyMaterialError.self) { try PGPKeyRef(armoredOrBinary: Array(damaged.joined(separator: "\n").utf8)) }
    }

    // MARK: S/MIME certificates against OpenSSL

    @Test func certificateFingerprintAndAddressesMatchOpenSSL() throws {
        let dir = try TemporaryDirectory()
        let carol = try makeCertificate(in: dir, name: "carol", subject: "/CN=Carol/emailAddress=Carol.Subject@Example.org",
                                        san: "email:carol@example.org,email:Carol.Other@example.net")
        let fromDER = try SMIMECertificateRef(derOrPEM: carol.der)
        #expect(fromDER.sha256Fingerprint == carol.fingerprint)
        #expect(fromDER.der == carol.der)
        #expect(Set(fromDER.emailAddresses) == ["carol@example.org", "carol.other@example.net", "carol.subject@example.org"])
        #expect(try SMIMECertificateRef(derOrPEM: carol.pem) == fromDER)

        let b64 = Base64.encode(carol.der)
        let spellings: [VCardProperty] = [
            VCardProperty(name: "KEY", parameters: ["MEDIATYPE": ["application/pkix-cert"]], value: "data:application/pkix-cert;base64," + b64),
            VCardProperty(name: "KEY", value: "data:application/x-x509-user-cert;base64," + b64),
            VCardProperty(name: "KEY", parameters: ["TYPE": ["X509"], "ENCODING": ["b"]], value: b64),
            VCardProperty(name: "KEY", value: "data:application/x-pem-file," + percentEncode(carol.pem)),
            VCardProperty(name: "KEY", parameters: ["TYPE": ["x509"]], text: String(decoding: carol.pem, as: UTF8.self)),
        ]
        for (k, key) in spellings.enumerated() {
            let card = VCard(properties: [VCardProperty(name: "EMAIL", text: "carol@example.org"), key])
            let contact = try Contact(vCard: try #require(VCard.parse(Array(card.serialized().utf8)).first))
            #expect(contact.smimeCertificates.map(\.sha256Fingerprint) == [carol.fingerprint], "spelling \(k)")
            #expect(contact.pgpKeys.isEmpty)
        }
    }

    @Test func hostileCertificatesAreErrors() throws {
        let dir = try TemporaryDirectory()
        let cert = try makeCertificate(in: dir, name: "dave", subject: "/CN=Dave", san: "email:dave@example.org")
        #expect(try SMIMECertificateRef(derOrPEM: cert.der).emailAddresses == ["dave@example.org"])
        for cut in stride(from: 1, to: cert.der.count, by: 7) {
            #expect(throws: KeyMaterialError.self) { try SMIMECertificateRef(derOrPEM: Array(cert.der.prefix(cut))) }
        }
        #expect(throws: KeyMaterialError.self) { try SMIMECertificateRef(derOrPEM: cert.der + [0]) }
        #expect(throws: KeyMaterialError.self) { try SMIMECertificateRef(derOrPEM: []) }
        #expect(throws: KeyMaterialError.self) { try SMIMECertificateRef(derOrPEM: [0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]) }
        #expect(throws: KeyMaterialError.self) { try SMIMECertificateRef(derOrPEM: Array("-----BEGIN CERTIFICATE-----\nAAAA\n".utf8)) }
        #expect(throws: KeyMaterialError.self) { try SMIMECertificateRef(derOrPEM: Array(cert.pem.prefix(cert.pem.count / 2))) }
        var rng = SplitMix(seed: 42)
        for _ in 0..<500 {
            var mutated = cert.der
            mutated[Int(rng.next() % UInt64(mutated.count))] = UInt8(truncatingIfNeeded: rng.next())
            _ = try? SMIMECertificateRef(derOrPEM: mutated)
        }
    }

    // MARK: Contacts from cards

    @Test func escrowPinAndGCMFlag() throws {
        let text = vcf([
            "BEGIN:VCARD", "VERSION:4.0", "FN:Erin Example",
            "EMAIL;TYPE=work:Erin@Example.ORG", "EMAIL:mailto:erin@home.example",
            #"X-SL-ESCROW-QUESTION:Our dog\, the first one\; name?"#,
            "X-SL-ESCROW-ANSWER:Rex the 1st",
            "X-SL-SMIME-GCM:no",
            "X-SL-PGP-FINGERPRINT:abcd ef01 2345 6789 ABCD  EF01 2345 6789 abcd ef01",
            "KEY:https://keys.example/erin.asc",
            "KEY;MEDIATYPE=application/pgp-keys:ldap://ldap.example/cn=erin",
            "KEY:openpgp4fpr:ABCDEF0123456789ABCDEF0123456789ABCDEF01",
            "KEY:data:application/x-ssh-key,ssh-ed25519%20AAAA",
            "END:VCARD",
            "BEGIN:VCARD", "FN:Plain", "EMAIL:plain@example.org", "END:VCARD",
        ])
        let cards = try VCard.parse(text)
        let erin = try Contact(vCard: cards[0])
        #expect(erin.name == "Erin Example")
        #expect(erin.addresses == ["erin@example.org", "erin@home.example"])
        #expect(erin.escrow == EscrowQuestion(question: "Our dog, the first one; name?", answer: "Rex the 1st"))
        #expect(erin.smimeReadsGCM == false)
        #expect(erin.pinnedPGPFingerprint == "ABCDEF0123456789ABCDEF0123456789ABCDEF01")
        #expect(erin.pgpKeys.isEmpty && erin.smimeCertificates.isEmpty)
        #expect(erin.hasEncryptionData)  // the escrow question
        let plain = try Contact(vCard: cards[1])
        #expect(plain.smimeReadsGCM == nil)
        #expect(plain.escrow == nil && plain.pinnedPGPFingerprint == nil)
        #expect(!plain.hasEncryptionData)
    }

    /// X-SL-SMIME-GCM is yes, no, or not said (smime_cipher decides), and a card
    /// written back keeps which.
    @Test(arguments: [("X-SL-SMIME-GCM:yes", true), ("X-SL-SMIME-GCM:No", false), ("X-SL-SMIME-GCM: 1 ", true), ("", nil)] as [(String, Bool?)])
    func gcmChoiceIsYesNoOrUnsaidAndSurvivesWritingBack(_ property: String, _ reads: Bool?) throws {
        let lines = ["BEGIN:VCARD", "VERSION:4.0", "FN:Gus", "EMAIL:gus@example.org"] + (property.isEmpty ? [] : [property]) + ["END:VCARD"]
        let gus = try Contact(vCard: try VCard.parse(vcf(lines))[0])
        #expect(gus.smimeReadsGCM == reads)
        let written = gus.vCard.serialized()
        #expect(written.contains("X-SL-SMIME-GCM:") == (reads != nil))
        let back = try Contact(vCard: try VCard.parse(Array(written.utf8))[0])
        #expect(back.smimeReadsGCM == reads)
        #expect(back == gus)
    }

    static let badCards: [(String, Int, String)] = [
        ("EMAIL:not-an-address", 3, "EMAIL"),
        ("EMAIL:two words@example.org", 3, "EMAIL"),
        ("KEY;TYPE=PGP;ENCODING=b:!!!!", 3, "base64"),
        ("KEY;MEDIATYPE=application/pgp-keys:data:application/pgp-keys;base64,AAAA", 3, "not OpenPGP"),
        ("KEY:data:application/pgp-keys;base64", 3, "','"),
        ("KEY:data:application/pgp-keys,%ZZ", 3, "%-escape"),
        ("KEY:data:application/pkix-cert;base64,MIIB", 3, "certificate"),
        ("KEY:zzzz", 3, "data: URI"),
        ("KEY;TYPE=PGP:-----BEGIN PGP PRIVATE KEY BLOCK-----", 3, "SECRET"),
        ("X-SL-ESCROW-QUESTION:Where?", 3, "no X-SL-ESCROW-ANSWER"),
        ("X-SL-ESCROW-ANSWER:There", 3, "no X-SL-ESCROW-QUESTION"),
        ("X-SL-SMIME-GCM:maybe", 3, "yes or no"),
        ("X-SL-SMIME-GCM:no\r\nX-SL-SMIME-GCM:yes", 4, "more than once"),
        ("X-SL-PGP-FINGERPRINT:1234", 3, "40- or 64-digit"),
    ]

    @Test(arguments: badCards)
    func badPropertiesNameFileAndLine(_ property: String, _ line: Int, _ fragment: String) throws {
        let dir = try TemporaryDirectory()
        let file = dir.path + "/book.vcf"
        try write("BEGIN:VCARD\r\nFN:X\r\n\(property)\r\nEND:VCARD\r\n", to: file)
        #expect {
            _ = try AddressBook.load(name: "b", path: file)
        } throws: { error in
            guard let e = error as? AddressBookError else { return false }
            return e.file == file && e.line == line && e.problem.contains(fragment)
                && e.description.hasPrefix("address book \(file):\(line): ")
        }
    }

    // MARK: Books

    @Test func directoriesLoadInNameOrderAndLookupIsCaseInsensitive() throws {
        let dir = try TemporaryDirectory()
        try write("BEGIN:VCARD\r\nFN:Second\r\nEMAIL:shared@example.org\r\nEND:VCARD\r\n", to: dir.path + "/b.vcf")
        try write("BEGIN:VCARD\nFN:First\nEMAIL:Shared@Example.org\nEMAIL:only-a@example.org\nEND:VCARD\n"
                  + "BEGIN:VCARD\nFN:Third\nEMAIL:third@example.org\nEND:VCARD\n", to: dir.path + "/a.VCF")
        try write("garbage", to: dir.path + "/.a.vcf.swp")
        try write("garbage", to: dir.path + "/.hidden.vcf")
        try write("garbage", to: dir.path + "/notes.txt")
        let book = try AddressBook.load(name: "friends", path: dir.path)
        #expect(book.name == "friends" && book.path == dir.path)
        #expect(book.contacts.map(\.name) == ["First", "Third", "Second"])
        #expect(book.contact(for: "SHARED@example.ORG")?.name == "First")
        #expect(book.contact(for: " only-A@example.org ")?.name == "First")
        #expect(book.contact(for: "third@example.org")?.name == "Third")
        #expect(book.contact(for: "nobody@example.org") == nil)

        #expect(throws: AddressBookError.self) { try AddressBook.load(name: "x", path: dir.path + "/missing.vcf") }
        let empty = try TemporaryDirectory()
        #expect(try AddressBook.load(name: "e", path: empty.path).contacts.isEmpty)
    }

    @Test func appendThenReload() throws {
        let dir = try TemporaryDirectory()
        let cert = try makeCertificate(in: dir, name: "frank", subject: "/CN=Frank", san: "email:frank@example.org")
        let file = dir.path + "/saved.vcf"
        let frank = Contact(name: "Frank, Jr.", addresses: ["Frank@Example.org"],
                            smimeCertificates: [try SMIMECertificateRef(derOrPEM: cert.der)],
                            escrow: EscrowQuestion(question: "Where did we meet?\nHint: a city; long name " + String(repeating: "é", count: 60),
                                                   answer: "Zürich, \\ at \"the\" station"),
                            smimeReadsGCM: false, pinnedPGPFingerprint: String(repeating: "AB", count: 20))
        try AddressBook.append(frank, toFile: file)
        var info = stat()
        #expect(stat(file, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)

        let grace = Contact(name: "Grace", addresses: ["grace@example.org"],
                            escrow: EscrowQuestion(question: "Q", answer: "A"))
        try AddressBook.append(grace, toFile: file)
        let book = try AddressBook.load(name: "saved", path: file)
        #expect(book.contacts == [frank, grace])
        #expect(book.contact(for: "frank@example.org")?.escrow == frank.escrow)

        // Appending to a hand-written file whose last line has no line end.
        let hand = dir.path + "/hand.vcf"
        try write("BEGIN:VCARD\nFN:Hand\nEMAIL:hand@example.org\nEND:VCARD", to: hand)
        try AddressBook.append(grace, toFile: hand)
        #expect(try AddressBook.load(name: "hand", path: hand).contacts.map(\.name) == ["Hand", "Grace"])

        #expect(throws: AddressBookError.self) { try AddressBook.append(grace, toFile: dir.path) }
    }
}

// MARK: Helpers

func write(_ text: String, to path: String) throws {
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
}

func percentEncode(_ bytes: [UInt8]) -> String {
    let safe = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
    return bytes.map { safe.contains($0) ? String(UnicodeScalar($0)) : String(format: "%%%02X", $0) }.joined()
}

struct TestCertificate {
    let der: [UInt8]
    let pem: [UInt8]
    /// As `openssl x509 -fingerprint -sha256` prints it, colons removed.
    let fingerprint: String
}

func makeCertificate(in dir: TemporaryDirectory, name: String, subject: String, san: String) throws -> TestCertificate {
    let pemPath = dir.path + "/\(name).pem"
    try run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-subj", subject, "-addext", "subjectAltName=\(san)", "-days", "30",
                        "-keyout", dir.path + "/\(name).key", "-out", pemPath])
    let der = try run("openssl", ["x509", "-in", pemPath, "-outform", "DER"])
    let printed = String(decoding: try run("openssl", ["x509", "-in", pemPath, "-noout", "-fingerprint", "-sha256"]), as: UTF8.self)
    let value = printed.split(separator: "=", maxSplits: 1).last.map(String.init) ?? ""
    let fingerprint = value.filter { $0 != ":" && !$0.isWhitespace }.uppercased()
    let pem = try [UInt8](Data(contentsOf: URL(fileURLWithPath: pemPath)))
    return TestCertificate(der: der, pem: pem, fingerprint: fingerprint)
}

/// Ways of writing an OpenPGP packet header (RFC 9580 4.2).
enum Framing: CaseIterable {
    case oldShortest, oldFourOctet, newShortest, newFiveOctet, newPartial

    func encode(tag: Int, body: [UInt8]) -> [UInt8] {
        let n = body.count
        func be(_ v: Int, _ octets: Int) -> [UInt8] { (0..<octets).reversed().map { UInt8(truncatingIfNeeded: v >> ($0 * 8)) } }
        func newLength(_ v: Int) -> [UInt8] {
            if v < 192 { return [UInt8(v)] }
            if v < 8384 { return [UInt8((v - 192) >> 8 + 192), UInt8((v - 192) & 0xFF)] }
            return [255] + be(v, 4)
        }
        switch self {
        case .oldShortest:
            let type = n < 256 ? 0 : n < 65536 ? 1 : 2
            return [UInt8(0x80 | tag << 2 | type)] + be(n, 1 << type) + body
        case .oldFourOctet:
            return [UInt8(0x80 | tag << 2 | 2)] + be(n, 4) + body
        case .newShortest:
            return [UInt8(0xC0 | tag)] + newLength(n) + body
        case .newFiveOctet:
            return [UInt8(0xC0 | tag), 255] + be(n, 4) + body
        case .newPartial:
            // 32-octet partial chunks, then the remainder with a normal length.
            var out: [UInt8] = [UInt8(0xC0 | tag)]
            var rest = body[...]
            while rest.count > 32 {
                out += [0xE5] + rest.prefix(32)
                rest = rest.dropFirst(32)
            }
            return out + newLength(rest.count) + rest
        }
    }
}

/// A small deterministic generator, so a failing mutation reproduces.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
