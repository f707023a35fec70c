@testable import SLPolicy

/// The vCard parser (SLPolicy/VCard.swift, VCard.parse): address books and the
/// cards contacts send are attacker input. Whatever parses must be written back by
/// VCard.serialized() (what sl-contacts and the escrow question save) so that it
/// parses again to the same cards: one card per card, the same properties in the
/// same order with the same group, name, parameters and value. The writer turns a
/// raw CR or LF (only a bare CR can survive unfolding) into the \n escape and
/// writes only the first VERSION, so the comparison allows for exactly that.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let cards = try? VCard.parse(bytes) else { return 0 }
    for card in cards {
        _ = try? Contact(vCard: card)
        let written = Array(card.serialized().utf8)
        let again: [VCard]
        do { again = try VCard.parse(written) } catch {
            preconditionFailure("a parsed card does not parse once written back: \(error)")
        }
        precondition(again.count == 1, "one card written back parses to \(again.count) cards")
        let version = card.properties.first { $0.name == "VERSION" }?.value ?? "4.0"
        let first = again[0].properties.first
        precondition(first?.name == "VERSION" && first?.value == VCard.singleLine(version),
                     "the written card does not start with its VERSION")
        let before = card.properties.filter { $0.name != "VERSION" }.map(normalized)
        let after = again[0].properties.dropFirst().map(normalized)
        precondition(before == after, "a card written back parses to other properties:\n\(before)\n\(after)")
    }
    return 0
}

/// What the writer keeps of a property: no line number, line breaks in the value
/// as the \n escape, a CR in a parameter value as a line feed.
func normalized(_ p: VCardProperty) -> VCardProperty {
    var parameters: [String: [String]] = [:]
    for (k, v) in p.parameters { parameters[k] = v.map(lineFeeds) }
    return VCardProperty(group: p.group, name: p.name, parameters: parameters, value: VCard.singleLine(p.value), line: 0)
}

func lineFeeds(_ s: String) -> String {
    var out = String.UnicodeScalarView()
    var previousCR = false
    for u in s.unicodeScalars {
        if u == "\r" { out.append("\n") } else if !(u == "\n" && previousCR) { out.append(u) }
        previousCR = u == "\r"
    }
    return String(out)
}
