import Foundation
import Testing
@testable import SLContacts

/// WKD addresses (draft-koch-openpgp-webkey-service, section 3.1), without a network.
@Suite struct ContactsWebKeyDirectoryTests {
    /// The draft's own example.
    @Test func theDraftsExample() throws {
        let l = try WebKeyDirectory.locations(for: "Joe.Doe@Example.ORG")
        #expect(l.advanced == "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe")
        #expect(l.direct == "https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe")
    }

    /// RFC 6189's alphabet, most significant bit first, partial groups padded with zeros.
    @Test func zBase32() {
        #expect(WebKeyDirectory.zBase32([]) == "")
        #expect(WebKeyDirectory.zBase32([0x00]) == "yy")
        #expect(WebKeyDirectory.zBase32([0xFF]) == "9h")
        #expect(WebKeyDirectory.zBase32([0xF0, 0xBF, 0xC7]) == "6n9hq")
        #expect(WebKeyDirectory.zBase32([UInt8](repeating: 0xFF, count: 5)) == "99999999")
        #expect(WebKeyDirectory.zBase32([UInt8](repeating: 0, count: 20)).count == 32)
    }

    /// Only ASCII letters are lowercased before hashing; the l= parameter keeps the
    /// local part as given, percent-escaped.
    @Test func localPartMapping() throws {
        #expect(try WebKeyDirectory.locations(for: "JOE.DOE@example.org").advanced.contains("/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=JOE.DOE"))
        let plus = try WebKeyDirectory.locations(for: "a+b c@Ex.test")
        #expect(plus.direct.hasSuffix("?l=a%2Bb%20c"))
        #expect(plus.direct.hasPrefix("https://ex.test/.well-known/openpgpkey/hu/"))
        #expect(WebKeyDirectory.asciiLowercased("ÄBc") == "Äbc")
        #expect(throws: ContactsError.self) { try WebKeyDirectory.locations(for: "no-at-sign") }
        #expect(throws: ContactsError.self) { try WebKeyDirectory.locations(for: "x@bad/domain") }
    }

    /// Held against GnuPG's own gpg-wks-client, for addresses it lowercases the same way.
    @Test(arguments: ["alice@example.org", "bob.smith@sub.example.net", "x_y-z@wkd.test", "Mixed.Case@EXAMPLE.COM"])
    func agreesWithGnuPG(_ address: String) throws {
        let client = "/usr/lib/gnupg/gpg-wks-client"
        try #require(FileManager.default.isExecutableFile(atPath: client), "gnupg's gpg-wks-client is missing")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: client)
        p.arguments = ["--print-wkd-hash", address]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let hash = try #require(text.split(separator: " ").first.map(String.init))
        #expect(hash.count == 32)
        let l = try WebKeyDirectory.locations(for: address)
        #expect(l.advanced.contains("/hu/\(hash)?l="), "\(l.advanced) vs gpg-wks-client \(hash)")
    }

    @Test func fingerprintsAsGpgAndOpenSSLPrintThem() {
        #expect(ContactsTool.groupedFingerprint("C242F19A8628FC404968535CD2F53F923C07AC8E") == "C242 F19A 8628 FC40 4968  535C D2F5 3F92 3C07 AC8E")
        #expect(ContactsTool.colonFingerprint("0A1B2C") == "0A:1B:2C")
    }
}
