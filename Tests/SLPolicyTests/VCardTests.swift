import Testing
@testable import SLPolicy

/// Joins lines with CRLF, as vCard files are written.
func vcf(_ lines: [String], ending: String = "\r\n") -> [UInt8] {
    Array((lines.joined(separator: ending) + ending).utf8)
}

// Nested in AddressBookTests so `swift test --filter AddressBookTests` runs them.
extension AddressBookTests {
@Suite struct VCardParsing {
    struct Case: Sendable, CustomTestStringConvertible {
        let label: String
        let file: [UInt8]
        let check: @Sendable ([VCard]) -> Void
        var testDescription: String { label }
    }

    static let cases: [Case] = [
        Case(label: "CRLF folding with space", file: vcf(["BEGIN:VCARD", "FN:Bo", " b Smi", " th", "END:VCARD"])) {
            #expect($0.first?.properties.first?.text == "Bob Smith")
        },
        Case(label: "LF folding with tab", file: vcf(["BEGIN:VCARD", "FN:Al", "\tice", "END:VCARD"], ending: "\n")) {
            #expect($0.first?.properties.first?.text == "Alice")
        },
        Case(label: "text escapes", file: vcf(["BEGIN:VCARD", #"NOTE:a\nb\,c\;d\\e\Nf"#, "END:VCARD"])) {
            #expect($0.first?.properties.first?.text == "a\nb,c;d\\e\nf")
            #expect($0.first?.properties.first?.value == #"a\nb\,c\;d\\e\Nf"#)
        },
        Case(label: "multi-valued and repeated parameters", file: vcf(["BEGIN:VCARD", "EMAIL;TYPE=work,home;type=pref;PREF=1:x@example.org", "END:VCARD"])) {
            let p = $0.first?.properties.first
            #expect(p?.parameter("TYPE") == ["work", "home", "pref"])
            #expect(p?.parameters["PREF"] == ["1"])
            #expect(p?.parameter("type", contains: "HOME") == true)
        },
        Case(label: "quoted parameter values", file: vcf(["BEGIN:VCARD", #"X-A;P="x;y:z",plain;Q="a,b":v:w"#, "END:VCARD"])) {
            let p = $0.first?.properties.first
            #expect(p?.parameters["P"] == ["x;y:z", "plain"])
            #expect(p?.parameters["Q"] == ["a,b"])
            #expect(p?.value == "v:w")
        },
        Case(label: "RFC 6868 caret escapes", file: vcf(["BEGIN:VCARD", #"ADR;LABEL="^'Main^' St^n^^2 ^x":;;"#, "END:VCARD"])) {
            #expect($0.first?.properties.first?.parameters["LABEL"] == ["\"Main\" St\n^2 ^x"])
        },
        Case(label: "groups and case-insensitive names", file: vcf(["begin:vcard", "item1.email;type=INTERNET:Bob@Example.org", "item1.X-ABLabel:work", "end:vcard"])) {
            let p = $0.first?.properties.first
            #expect(p?.group == "item1")
            #expect(p?.name == "EMAIL")
            #expect(p?.parameters["TYPE"] == ["INTERNET"])
            #expect($0.first?.properties.last?.name == "X-ABLABEL")
        },
        Case(label: "vCard 3 key parameters", file: vcf(["BEGIN:VCARD", "VERSION:3.0", "KEY;TYPE=PGP;ENCODING=b:AAAA", "END:VCARD"])) {
            let p = $0.first?.properties(named: "KEY").first
            #expect(p?.parameters == ["TYPE": ["PGP"], "ENCODING": ["b"]])
        },
        Case(label: "vCard 2.1 bare parameters", file: vcf(["BEGIN:VCARD", "VERSION:2.1", "KEY;PGP;BASE64:AAAA", "END:VCARD"])) {
            #expect($0.first?.properties(named: "KEY").first?.parameters == ["TYPE": ["PGP"], "ENCODING": ["BASE64"]])
        },
        Case(label: "several cards, blank lines, BOM, no final newline",
             file: Array("\u{FEFF}BEGIN:VCARD\r\nFN:A\r\nEND:VCARD\r\n\r\n  \r\nBEGIN:VCARD\nFN:B\nEND:VCARD".utf8)) {
            #expect($0.count == 2)
            #expect($0.map { $0.properties.first?.text } == ["A", "B"])
            #expect($0.map(\.line) == [1, 6])
        },
        Case(label: "empty file", file: []) { #expect($0.isEmpty) },
    ]

    @Test(arguments: cases)
    func parses(_ c: Case) throws {
        c.check(try VCard.parse(c.file))
    }

    @Test func foldInsideUTF8SequenceReassembles() throws {
        // "Zü" with the fold between the two octets of ü.
        let bytes: [UInt8] = Array("BEGIN:VCARD\r\nFN:Z".utf8) + [0xC3, 0x0D, 0x0A, 0x20, 0xBC] + Array("rich\r\nEND:VCARD\r\n".utf8)
        #expect(try VCard.parse(bytes).first?.properties.first?.text == "Z\u{FC}rich")
    }

    static let malformed: [(String, Int, String)] = [
        ("BEGIN:VCARD\r\nFN:A\r\nBEGIN:VCARD\r\nEND:VCARD\r\n", 3, "END:VCARD"),
        ("END:VCARD\r\n", 1, "without a matching BEGIN"),
        ("\r\nBEGIN:VCARD\r\nFN:A\r\n", 2, "no END:VCARD"),
        ("BEGIN:VCARD\r\nEND:VCARD\r\nFN:stray\r\n", 3, "outside"),
        ("BEGIN:VCARD\r\nFN:A\r\n  b\r\nFN Bob\r\nEND:VCARD\r\n", 4, "':'"),
        ("BEGIN:VCARD\r\nX;P=\"open:v\r\nEND:VCARD\r\n", 2, "closing quote"),
        ("BEGIN:VCARD\r\nX;P=a\"b:v\r\nEND:VCARD\r\n", 2, "quote values"),
        ("BEGIN:VCARD\r\nX;=a:v\r\nEND:VCARD\r\n", 2, "parameter name"),
        ("BEGIN:VCARD\r\ngrp.:v\r\nEND:VCARD\r\n", 2, "property name"),
        ("BEGIN:VCARD\r\n:v\r\nEND:VCARD\r\n", 2, "expected a property"),
        ("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", 1, "not a vCard"),
        ("BEGIN:VCARD\r\nEND:VCALENDAR\r\n", 2, "expected END:VCARD"),
        (" FN:A\r\n", 1, "indented"),
    ]

    @Test(arguments: malformed)
    func malformedFilesNameTheLine(_ text: String, _ line: Int, _ fragment: String) {
        #expect {
            _ = try VCard.parse(Array(text.utf8))
        } throws: { error in
            guard let e = error as? VCardError else { return false }
            return e.line == line && e.message.contains(fragment)
        }
    }
}
}

extension AddressBookTests {
@Suite struct VCardWriter {
    @Test func foldsAt75OctetsWithoutSplittingCharacters() throws {
        let long = String(repeating: "Grüße aus Köln 😀 ", count: 12)
        let card = VCard(properties: [VCardProperty(name: "NOTE", text: long),
                                      VCardProperty(name: "KEY", value: String(repeating: "A", count: 300))])
        let text = card.serialized()
        #expect(text.hasPrefix("BEGIN:VCARD\r\nVERSION:4.0\r\n"))
        #expect(text.hasSuffix("END:VCARD\r\n"))
        let bytes = Array(text.utf8)
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        for i in bytes.indices where bytes[i] == 0x0A {
            #expect(i > 0 && bytes[i - 1] == 0x0D)
            lines.append(bytes[start..<(i - 1)])
            start = i + 1
        }
        for line in lines {
            #expect(line.count <= 75)
            // Each physical line decodes as UTF-8 on its own: no sequence was split.
            #expect(String(validatingUTF8CString: line) != nil)
        }
        let back = try VCard.parse(bytes)
        #expect(back.first?.properties(named: "NOTE").first?.text == long)
        #expect(back.first?.properties(named: "KEY").first?.value == String(repeating: "A", count: 300))
    }

    @Test func roundTripsGroupsParametersAndAwkwardText() throws {
        let props = [
            VCardProperty(group: "item1", name: "email", parameters: ["type": ["work", "a;b", "say \"hi\"", "x^y", "two\nlines"]],
                          value: "bob@example.org"),
            VCardProperty(name: "NOTE", text: "line1\r\nline2, with; \\ odd"),
            VCardProperty(name: "X-RAW", value: "injected\r\nEND:VCARD"),
        ]
        let text = VCard(properties: props).serialized()
        let back = try VCard.parse(Array(text.utf8))
        #expect(back.count == 1)
        let parsed = try #require(back.first).properties.filter { $0.name != "VERSION" }
        #expect(parsed.count == 3)
        #expect(parsed[0].group == "item1")
        #expect(parsed[0].name == "EMAIL")
        #expect(parsed[0].parameters == ["TYPE": ["work", "a;b", "say \"hi\"", "x^y", "two\nlines"]])
        #expect(parsed[1].text == "line1\nline2, with; \\ odd")
        // A raw value cannot smuggle in a line of its own.
        #expect(parsed[2].value == #"injected\nEND:VCARD"#)
    }

    @Test(arguments: ["", "plain", "a,b;c\\d", "\\n literal", "trailing\\", "ünïcödé\n😀"])
    func textEscapingRoundTrips(_ s: String) {
        #expect(VCardProperty.unescapeText(VCardProperty.escapeText(s)) == s)
    }
}
}

extension String {
    /// Strict UTF-8 validation of a byte slice.
    init?(validatingUTF8CString bytes: ArraySlice<UInt8>) {
        var it = bytes.makeIterator()
        var decoder = UTF8()
        var out = ""
        loop: while true {
            switch decoder.decode(&it) {
            case .scalarValue(let u): out.unicodeScalars.append(u)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        self = out
    }
}
