import Foundation
import Testing
import SLMessage

/// The hand-made RFC 5322 date against DateFormatter, the slow reference it replaced.
@Suite struct DateTests {
    static func reference(_ d: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return f.string(from: d)
    }

    @Test(arguments: [0.0, 951_782_400, 1_700_000_000, 1_795_900_000.9, 4_102_444_799, 1_234_567_890, 86_399])
    func matchesDateFormatter(_ seconds: Double) {
        let d = Date(timeIntervalSince1970: seconds)
        #expect(DeliveryReport.rfc5322Date(d) == Self.reference(d))
    }

    @Test func randomDatesMatch() {
        for _ in 0..<500 {
            let d = Date(timeIntervalSince1970: Double.random(in: 0..<4_102_444_800).rounded(.down))
            #expect(DeliveryReport.rfc5322Date(d) == Self.reference(d))
        }
    }
}
