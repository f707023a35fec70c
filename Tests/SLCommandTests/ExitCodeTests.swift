import Foundation
import Testing
import SLCommand
import SLEscrow
import SLMessage
import SLPGP
import SLPolicy
import SLSMIME
import SLTransport

/// The exit-code table: each error type states its sysexits code where it is
/// defined, and the command layer only reads it.
@Suite struct ExitCodeTests {
    @Test func eachErrorMeansItsCode() {
        let table: [(any Error, Sysexit)] = [
            (MessageError.malformed("x"), .dataError),
            (MessageError.invalidField("x"), .dataError),
            (MessageError.io("x"), .tempFail),
            (ConfigurationError("f", 1, "x"), .config),
            (UsageError("x"), .usage),
            (PGPHomeError(description: "x"), .config),
            (RecipientCertificateError(recipient: "a@b.example", problem: "x"), .unavailable),
            (EscrowError.storage("busy"), .tempFail),
            (EscrowError.noAccount("a@b.example"), .noUser),
            (EscrowError.wrongAnswer(remaining: 2), .noPermission),
        ]
        for (error, code) in table {
            #expect(Sysexit(for: error) == code, "\(type(of: error)): \(error)")
        }
        // Only an error that is not ours (a system error) takes the safe default.
        #expect(Sysexit(for: CocoaError(.fileNoSuchFile)) == .tempFail)
    }

    @Test func onlyTemporaryFailureIsTemporary() {
        #expect(Sysexit.allCases.filter(\.isTemporary) == [.tempFail])
    }

    /// Every error type in Sources states its code: a new one that does not is
    /// found here, not by a message deferred for five days.
    @Test func everyErrorTypeOfTheSourcesStatesItsCode() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources")
        var declared = Set<String>(), conforming = Set<String>()
        let declaration = try Regex(#"(?:struct|enum|class)\s+(\w+)\s*:\s*([^{]*)\{"#)
        let conformance = try Regex(#"extension\s+([\w.]+)\s*:\s*([^{]*)\{"#)
        let files = FileManager.default.enumerator(atPath: sources.path)
        while let name = files?.nextObject() as? String {
            guard name.hasSuffix(".swift") else { continue }
            let text = try String(contentsOf: sources.appendingPathComponent(name), encoding: .utf8)
            for m in text.matches(of: declaration) {
                let type = String(m.output[1].substring ?? ""), inherits = String(m.output[2].substring ?? "")
                let list = inherits.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                if list.contains("Error") || list.contains("RecipientRefusal") || list.contains("SysexitReporting") { declared.insert(type) }
                if list.contains("SysexitReporting") { conforming.insert(type) }
            }
            for m in text.matches(of: conformance) where (m.output[2].substring ?? "").contains("SysexitReporting") {
                conforming.insert(String((m.output[1].substring ?? "").split(separator: ".").last ?? ""))
            }
        }
        #expect(declared.count > 20, "\(declared)")
        #expect(declared.subtracting(conforming).isEmpty, "error types without an exit code: \(declared.subtracting(conforming).sorted())")
    }
}
