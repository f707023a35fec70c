// Writing vCards back out (used when a sender saves an escrow question). The output
// must re-parse to the same properties, so anything that could break the line
// structure (line breaks, stray quotes, odd names) is escaped or dropped here rather
// than trusted to callers.

extension VCard {
    /// RFC 6350 3.2: lines longer than 75 octets are folded.
    static let maximumLineOctets = 75

    /// The card as vCard text: CRLF line ends, VERSION right after BEGIN (4.0 unless a
    /// VERSION property says otherwise), long lines folded at 75 octets.
    public func serialized() -> String {
        var out: [UInt8] = []
        func emit(_ line: String) {
            out += VCard.fold(Array(line.utf8))
            out += [0x0D, 0x0A]
        }
        emit("BEGIN:VCARD")
        let version = properties.first { $0.name == "VERSION" }?.value ?? "4.0"
        emit("VERSION:" + VCard.singleLine(version))
        // BEGIN/END in the list would open or close a card we did not mean to write.
        for p in properties where !["VERSION", "BEGIN", "END"].contains(p.name) {
            emit(p.contentLine)
        }
        emit("END:VCARD")
        return String(decoding: out, as: UTF8.self)
    }

    /// Folds one content line, never inside a UTF-8 sequence (RFC 6350 3.2 requires
    /// multi-octet characters to stay contiguous).
    static func fold(_ line: [UInt8]) -> [UInt8] {
        guard line.count > maximumLineOctets else { return line }
        var out: [UInt8] = []
        var start = 0
        var limit = maximumLineOctets
        while start < line.count {
            var end = min(start + limit, line.count)
            // Back up off continuation bytes (10xxxxxx) so the cut lands on a boundary.
            while end < line.count && end > start + 1 && line[end] & 0xC0 == 0x80 { end -= 1 }
            if start > 0 { out += [0x0D, 0x0A, 0x20] }
            out += line[start..<end]
            start = end
            limit = maximumLineOctets - 1  // continuation lines spend one octet on the space
        }
        return out
    }

    /// A raw value with its line breaks turned into the \n escape, so no value can
    /// smuggle in another content line.
    static func singleLine(_ s: String) -> String {
        guard s.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) else { return s }
        var out = ""
        for c in s {
            out += (c == "\n" || c == "\r" || c == "\r\n") ? "\\n" : String(c)
        }
        return out
    }
}

extension VCardProperty {
    /// `[group.]NAME;PARAM=...:value`, unfolded.
    var contentLine: String {
        var line = ""
        if let group, !group.isEmpty { line += VCardProperty.sanitizedName(group) + "." }
        line += VCardProperty.sanitizedName(name).uppercased()
        for key in parameters.keys.sorted() {
            let values = parameters[key] ?? []
            line += ";" + VCardProperty.sanitizedName(key).uppercased() + "="
            line += values.map(VCardProperty.encodeParameterValue).joined(separator: ",")
        }
        return line + ":" + VCard.singleLine(value)
    }

    /// Names are ALPHA / DIGIT / "-" (we also read "_"); anything else is dropped so a
    /// name can never carry a ':' or ';' into the line.
    static func sanitizedName(_ s: String) -> String {
        let kept = s.unicodeScalars.filter {
            ($0 >= "A" && $0 <= "Z") || ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9")
                || $0 == "-" || $0 == "_"
        }
        let name = String(String.UnicodeScalarView(kept))
        return name.isEmpty ? "X-INVALID" : name
    }

    /// RFC 6868 ^-escapes, and quotes when the value holds a delimiter (RFC 6350 5).
    static func encodeParameterValue(_ s: String) -> String {
        var out = ""
        var needsQuotes = false
        var previousCR = false
        for u in s.unicodeScalars {
            switch u {
            case "^": out += "^^"
            case "\"": out += "^'"
            case "\r": out += "^n"
            case "\n": if !previousCR { out += "^n" }
            case ",", ";", ":": needsQuotes = true; out.unicodeScalars.append(u)
            default: out.unicodeScalars.append(u)
            }
            previousCR = u == "\r"
        }
        return needsQuotes ? "\"" + out + "\"" : out
    }
}
