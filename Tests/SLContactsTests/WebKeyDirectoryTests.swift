import Testing
@testable import SLContacts

@Suite struct WebKeyDirectoryTests {
    @Test func placeholder() { #expect(WebKeyDirectory.zBase32([]) == "") }
}
