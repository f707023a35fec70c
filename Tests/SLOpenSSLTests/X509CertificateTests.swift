import Foundation
import Testing
@testable import SLOpenSSL

/// A CA and a leaf it issued, made by the openssl command at test time, with what
/// openssl itself says of the leaf, to hold the wrapper's readings against.
struct Issued {
    static let shared = Result { try Issued() }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sl-openssl-\(UUID().uuidString)").path

    init() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let script = """
            set -e
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
                -subj '/CN=Test CA/O=Example' -keyout ca.key -out ca.pem 2>/dev/null
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                -subj '/CN=Leaf, Tester/emailAddress=Leaf@Example.org' -keyout leaf.key -out leaf.csr 2>/dev/null
            printf 'subjectAltName=email:leaf@example.org,email:other@example.net\\n' > ext
            openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 7 -extfile ext -out leaf.pem 2>/dev/null
            openssl x509 -in leaf.pem -outform DER -out leaf.der
            openssl x509 -in leaf.pem -text > leaf.txt
            cat leaf.pem ca.pem > bundle.pem
            openssl x509 -in leaf.pem -noout -nameopt RFC2253 -dateopt iso_8601 -subject -issuer -startdate -enddate \
                -fingerprint -sha256 > said
            """
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", script]
        shell.currentDirectoryURL = URL(fileURLWithPath: dir)
        try shell.run()
        shell.waitUntilExit()
        guard shell.terminationStatus == 0 else { throw OpenSSLError(plain: "openssl could not make the test certificates") }
    }

    func bytes(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(name)"))) }

    /// openssl's `key=value` lines, values as printed.
    func said() throws -> [String: String] {
        let lines = String(decoding: try bytes("said"), as: UTF8.self).split(separator: "\n")
        return Dictionary(lines.map { line in
            let pair = line.split(separator: "=", maxSplits: 1).map(String.init)
            return (pair[0].lowercased(), pair.count > 1 ? pair[1] : "")
        }, uniquingKeysWith: { a, _ in a })
    }
}

@Suite struct X509CertificateTests {
    let issued: Issued
    init() throws { issued = try Issued.shared.get() }

    @Test func derPEMAndPEMAfterTextAreTheSameCertificate() throws {
        let der = try issued.bytes("leaf.der")
        for name in ["leaf.der", "leaf.pem", "leaf.txt", "bundle.pem"] {
            #expect(try X509Certificate(derOrPEM: issued.bytes(name)).der() == der, "\(name)")
        }
        #expect(try X509Certificate(der: der).der() == der)
        #expect(try X509Certificate(pem: issued.bytes("leaf.txt")).der() == der)
    }

    @Test func allReadsEveryCertificateOfABundleAndTheOneOfDER() throws {
        let bundle = try X509Certificate.all(derOrPEM: issued.bytes("bundle.pem"))
        #expect(try bundle.map { try $0.der() } == [try issued.bytes("leaf.der"), try X509Certificate(pem: issued.bytes("ca.pem")).der()])
        #expect(try X509Certificate.all(derOrPEM: issued.bytes("leaf.der")).count == 1)
    }

    @Test func whatItReadsIsWhatOpenSSLPrints() throws {
        let said = try issued.said()
        let leaf = try X509Certificate(derOrPEM: issued.bytes("leaf.pem"))
        #expect(leaf.subject == said["subject"])
        #expect(leaf.issuer == said["issuer"])
        #expect(leaf.notBefore == said["notbefore"]?.replacingOccurrences(of: " ", with: "T"))
        #expect(leaf.notAfter == said["notafter"]?.replacingOccurrences(of: " ", with: "T"))
        let fingerprint = try leaf.sha256Fingerprint().map { String(format: "%02X", $0) }.joined(separator: ":")
        #expect(fingerprint == said["sha256 fingerprint"])
        #expect(Set(leaf.emailAddresses) == ["leaf@example.org", "other@example.net"])
    }

    @Test func damagedDataIsAnErrorAndLeavesNothingQueued() throws {
        let der = try issued.bytes("leaf.der")
        let pem = try issued.bytes("leaf.pem")
        let damaged: [[UInt8]] = [[], der + [0], Array(der.prefix(der.count - 1)), Array(pem.prefix(pem.count / 2)),
                                  Array("not a certificate".utf8)]
        for data in damaged {
            #expect(throws: OpenSSLError.self) { try X509Certificate(derOrPEM: data) }
            #expect(throws: OpenSSLError.self) { try X509Certificate.all(derOrPEM: data) }
            // An error made now finds none of the parser's reasons left behind.
            #expect(OpenSSLError("next").description == "next")
        }
    }
}
