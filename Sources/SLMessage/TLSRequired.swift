/// RFC 8689's `TLS-Required` header field, read where sl-classify decides and where
/// sl-deliver delivers: one rule for both.
public enum TLSRequiredField {
    /// Section 5: exactly one `TLS-Required` field whose value is "No" (case and
    /// surrounding spaces ignored). Several fields, or any other value, ask for nothing.
    public static func optsOut(_ header: HeaderSection) -> Bool {
        let fields = header.all("TLS-Required")
        guard fields.count == 1 else { return false }
        return fields[0].unfoldedValue.trimmingCharacters(in: .whitespaces).lowercased() == "no"
    }
}
