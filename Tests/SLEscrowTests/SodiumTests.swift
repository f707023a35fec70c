import Testing
@testable import SLEscrow

@Suite struct SodiumTests {
    @Test func libsodiumInitialises() { #expect(Sodium.ready) }
}
