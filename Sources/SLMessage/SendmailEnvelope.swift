/// The envelope the way sendmail(8) takes it, for every tool that takes one:
/// `-f` for the sender, recipients as arguments or, with `-t`, from the header.
public enum SendmailEnvelope {
    /// `-f`: "" or "<>" is the null sender; anything else must be an address.
    public static func sender(option: String) throws -> String {
        if option.isEmpty || option == "<>" { return "" }
        return try EmailAddress(parsing: option).addrSpec
    }

    /// Without `-f`: the address of the mbox `From ` line (`MAILER-DAEMON` is the
    /// null sender), else the first address of the `From` field; nil when neither
    /// gives one.
    public static func sender(of message: Message) -> String? {
        if let line = message.fromLine {
            let words = String(lenientUTF8: line).split(separator: " ", maxSplits: 2)
            if words.count >= 2 {
                if words[1] == "MAILER-DAEMON" { return "" }
                if let a = try? EmailAddress(parsing: String(words[1])) { return a.addrSpec }
            }
        }
        if let from = message.header.first("From"), let a = try? AddressList.parse(from.unfoldedValue).first {
            return a.addrSpec
        }
        return nil
    }

    /// The recipients `-t` takes: To, Cc and Bcc in that order, each marked when it
    /// came from Bcc. A field that does not parse makes the message malformed.
    public static func headerRecipients(of message: Message) throws -> [(address: EmailAddress, fromBcc: Bool)] {
        var out: [(address: EmailAddress, fromBcc: Bool)] = []
        for name in ["To", "Cc", "Bcc"] {
            for f in message.header.all(name) {
                do {
                    for a in try AddressList.parse(f.unfoldedValue) { out.append((a, name == "Bcc")) }
                } catch {
                    throw MessageError.malformed("message \(message.index): \(name): \(error)")
                }
            }
        }
        return out
    }

    /// `-t`: the recipients of the header, and the Bcc field removed from the message.
    public static func takeHeaderRecipients(from message: inout Message) throws -> [(address: EmailAddress, fromBcc: Bool)] {
        let out = try headerRecipients(of: message)
        message.header.remove("Bcc")
        return out
    }

    /// The addresses (comparison keys) that To and Cc show to every recipient; a
    /// field that does not parse names no one.
    public static func visibleRecipients(_ header: HeaderSection) -> Set<String> {
        var keys = Set<String>()
        for name in ["To", "Cc"] {
            for f in header.all(name) {
                for a in (try? AddressList.parse(f.unfoldedValue)) ?? [] { keys.insert(a.key) }
            }
        }
        return keys
    }
}
