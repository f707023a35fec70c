/// The envelope and routing of a message in a pipeline, carried in `X-SL-*` header
/// fields at the top of the message (see sl(7)). `sl-classify` writes them after
/// removing any that arrived from outside; `sl-deliver` removes them before sending.
///
///     X-SL-Version: 1
///     X-SL-Envelope-From: alice@clinic.example
///     X-SL-Envelope-To: bob@example.org; pgp=0123...CDEF; book=clinic
///     X-SL-Method: pgp
///     X-SL-TLS: opportunistic
///     X-SL-Fallback: bounce
///
/// Addresses are written as RFC 3461 xtext, so an address can never break out of its
/// field or its parameter list, whatever a hostile sender put in a quoted local part.
/// Secrets never appear here: tools look them up in the same configuration.
public struct Envelope: Sendable, Equatable {
    public static let fieldPrefix = "X-SL-"
    public static let version = "1"

    /// Envelope sender as an addr-spec; empty for the null sender `<>`.
    public var sender: String
    public var recipients: [Recipient]
    public var method: DeliveryMethod
    public var tls: TLSRequirement
    public var fallback: FallbackAction
    /// The policy account the sender belongs to, when the configuration names one.
    public var account: String?
    /// An escrow notice's sealed message: its id in the store (`X-SL-Escrow-Id`)
    /// and the Message-ID it had (`X-SL-Original-Message-Id`), for the audit
    /// records of the notice's delivery.
    public var escrowID: String?
    public var originalMessageID: String?
    /// `X-SL-Message-Digest`: SHA-256 (hex) of the message as sl-classify took it,
    /// carried to every copy made of it (encrypted copies, escrow notices), so that
    /// sl-deliver's record knows a copy of the same message when the same input is
    /// fed again, whatever the encryption or sealing made of it this time.
    public var messageDigest: String?

    public init(sender: String, recipients: [Recipient], method: DeliveryMethod,
                tls: TLSRequirement, fallback: FallbackAction, account: String? = nil) {
        self.sender = sender
        self.recipients = recipients
        self.method = method
        self.tls = tls
        self.fallback = fallback
        self.account = account
    }

    /// One envelope recipient and what the next tools need to know about it, as
    /// ordered `key=value` parameters (values are tokens: hex, names, modes).
    public struct Recipient: Sendable, Equatable {
        public var address: String
        public var parameters: [(key: RoutingKey, value: String)]

        public init(address: String, parameters: [(key: RoutingKey, value: String)] = []) {
            self.address = address
            self.parameters = parameters
        }

        public func parameter(_ key: RoutingKey) -> String? {
            parameters.first { $0.key == key }?.value
        }

        /// `escrow=`: how an escrow recipient proves who they are, or that this
        /// copy is a notice already.
        public var escrowMode: EscrowMode? { parameter(.escrow).flatMap(EscrowMode.init(rawValue:)) }

        /// `qa=`: where the escrow question and answer are.
        public var answerSource: AnswerSource? { parameter(.qa).flatMap(AnswerSource.init(parsing:)) }

        public static func == (a: Recipient, b: Recipient) -> Bool {
            a.address == b.address && a.parameters.elementsEqual(b.parameters) { $0 == $1 }
        }
    }

    /// A notice sl-escrow-pack made (every recipient `escrow=notice`): the message
    /// itself stays sealed, and this copy may leave.
    public var isEscrowNotice: Bool {
        method == .escrow && !recipients.isEmpty && recipients.allSatisfy { $0.escrowMode == .notice }
    }

    /// The routing parameters of `X-SL-Envelope-To`: the whole vocabulary the tools
    /// speak (sl(7), ROUTING FIELDS). A key outside it is a malformed routing field.
    public enum RoutingKey: String, Sendable, CaseIterable {
        /// The pinned PGP key's fingerprint.
        case pgp
        /// The S/MIME certificate's SHA-256 fingerprint.
        case smime
        /// The address book the key, certificate or question came from.
        case book
        /// yes or no: the contact reads AES-GCM S/MIME, or does not.
        case gcm
        /// `EscrowMode`.
        case escrow
        /// `AnswerSource`.
        case qa
    }

    /// `escrow=`.
    public enum EscrowMode: String, Sendable {
        case question, login
        /// A notice sl-escrow-pack made: the message itself is sealed.
        case notice
    }

    /// `qa=SOURCE:NAME`: where the question and answer for `escrow=question` are.
    public enum AnswerSource: Sendable, Equatable {
        /// The recipient's entry in this address book.
        case book(String)
        /// The sender's default question at this level (user, domain, account, global).
        case defaultQuestion(level: String)
        /// An answer given at the terminal, kept under this token.
        case pending(token: String)

        public init?(parsing text: String) {
            guard let colon = text.firstIndex(of: ":") else { return nil }
            let name = String(text[text.index(after: colon)...])
            switch text[..<colon] {
            case "book": self = .book(name)
            case "default": self = .defaultQuestion(level: name)
            case "pending": self = .pending(token: name)
            default: return nil
            }
        }

        public var text: String {
            switch self {
            case .book(let n): return "book:\(n)"
            case .defaultQuestion(let level): return "default:\(level)"
            case .pending(let token): return "pending:\(token)"
            }
        }
    }
}

public enum DeliveryMethod: String, Sendable, CaseIterable, Codable {
    /// `internal`: to the organisation's own domains, delivered as the MTA would
    /// (opportunistic TLS), without a method decision.
    case tls, pgp, smime, escrow, insecure, `internal`, bounce
}

/// How `sl-deliver` must treat TLS for the message.
public enum TLSRequirement: String, Sendable, CaseIterable {
    /// Enforced, verified TLS to the recipient's MX or nothing (TLS-only messages).
    case required
    /// Enforced TLS authenticated by the MX host's DNSSEC-validated TLSA records
    /// (RFC 7672), or nothing: TLS-only messages when `tls_min_verdict = dane`.
    case dane
    /// STARTTLS when offered; the content is already protected or policy allows it.
    case opportunistic
}

public enum FallbackAction: String, Sendable, CaseIterable, Codable {
    case insecure, bounce
}

extension Envelope {
    enum Field {
        static let version = "X-SL-Version"
        static let from = "X-SL-Envelope-From"
        static let to = "X-SL-Envelope-To"
        static let method = "X-SL-Method"
        static let tls = "X-SL-TLS"
        static let fallback = "X-SL-Fallback"
        static let account = "X-SL-Account"
        static let escrowID = "X-SL-Escrow-Id"
        static let originalMessageID = "X-SL-Original-Message-Id"
        static let messageDigest = "X-SL-Message-Digest"
    }

    /// Reads the envelope from a header section; nil when the message carries none.
    /// Malformed fields throw: a message with a broken routing header must not be sent.
    public static func read(from header: HeaderSection) throws -> Envelope? {
        guard header.first(Field.method) != nil || header.first(Field.from) != nil else { return nil }
        func one(_ name: String) throws -> String {
            let found = header.all(name)
            guard found.count == 1 else {
                throw MessageError.malformed(found.isEmpty ? "\(name) is missing" : "\(name) appears \(found.count) times")
            }
            return found[0].unfoldedValue
        }
        let version = try one(Field.version)
        guard version == Self.version else { throw MessageError.malformed("\(Field.version) \(version) is not supported (expected \(Self.version))") }
        guard let sender = XText.decode(try one(Field.from)) else { throw MessageError.malformed("\(Field.from) is not valid xtext") }
        let methodText = try one(Field.method)
        guard let method = DeliveryMethod(rawValue: methodText) else { throw MessageError.malformed("\(Field.method) \"\(methodText)\" is unknown") }
        let tlsText = try one(Field.tls)
        guard let tls = TLSRequirement(rawValue: tlsText) else { throw MessageError.malformed("\(Field.tls) \"\(tlsText)\" is unknown") }
        let fallbackText = try one(Field.fallback)
        guard let fallback = FallbackAction(rawValue: fallbackText) else { throw MessageError.malformed("\(Field.fallback) \"\(fallbackText)\" is unknown") }
        let account = header.first(Field.account)?.unfoldedValue
        var recipients: [Recipient] = []
        for f in header.all(Field.to) {
            let parts = f.unfoldedValue.split(separator: ";").map { $0.trimmingCharacters(in: " \t") }
            guard let first = parts.first, let address = XText.decode(first), !address.isEmpty else {
                throw MessageError.malformed("\(Field.to) \"\(f.unfoldedValue)\" has no valid address")
            }
            var params: [(key: RoutingKey, value: String)] = []
            for p in parts.dropFirst() where !p.isEmpty {
                guard let eq = p.firstIndex(of: "="), eq != p.startIndex else {
                    throw MessageError.malformed("\(Field.to) parameter \"\(p)\" is not name=value")
                }
                guard let key = RoutingKey(rawValue: String(p[..<eq])) else {
                    throw MessageError.malformed("\(Field.to) parameter \"\(p[..<eq])\" is not one of \(RoutingKey.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                params.append((key, String(p[p.index(after: eq)...])))
            }
            recipients.append(Recipient(address: address, parameters: params))
        }
        guard !recipients.isEmpty else { throw MessageError.malformed("\(Field.to) is missing") }
        var envelope = Envelope(sender: sender, recipients: recipients, method: method, tls: tls, fallback: fallback, account: account)
        envelope.escrowID = header.first(Field.escrowID)?.unfoldedValue
        // Written through OneLine (it came from outside); read the same way, so that what
        // is read is what would be written.
        envelope.originalMessageID = header.first(Field.originalMessageID).map { OneLine.of($0.unfoldedValue).trimmingWSP() }
        if let digest = header.first(Field.messageDigest)?.unfoldedValue {
            guard isToken(digest) else { throw MessageError.malformed("\(Field.messageDigest) \"\(digest)\" is not a token") }
            envelope.messageDigest = digest
        }
        return envelope
    }

    /// Replaces every `X-SL-*` field of `header` with this envelope, at the top, in a
    /// fixed order (deterministic output).
    public func write(into header: inout HeaderSection) throws {
        header.removeEnvelopeFields()
        var fields: [(String, String)] = [
            (Field.version, Self.version),
            (Field.from, XText.encode(sender)),
        ]
        for r in recipients {
            var v = XText.encode(r.address)
            for p in r.parameters {
                guard Self.isToken(p.value) else {
                    throw MessageError.invalidField("routing parameter \(p.key.rawValue)=\(p.value) is not a token")
                }
                v += "; \(p.key.rawValue)=\(p.value)"
            }
            fields.append((Field.to, v))
        }
        fields.append((Field.method, method.rawValue))
        fields.append((Field.tls, tls.rawValue))
        fields.append((Field.fallback, fallback.rawValue))
        if let account {
            guard Self.isToken(account) else { throw MessageError.invalidField("account name \"\(account)\" is not a token") }
            fields.append((Field.account, account))
        }
        if let escrowID {
            guard Self.isToken(escrowID) else { throw MessageError.invalidField("escrow id \"\(escrowID)\" is not a token") }
            fields.append((Field.escrowID, escrowID))
        }
        if let originalMessageID { fields.append((Field.originalMessageID, OneLine.of(originalMessageID))) }
        if let messageDigest {
            guard Self.isToken(messageDigest) else { throw MessageError.invalidField("message digest \"\(messageDigest)\" is not a token") }
            fields.append((Field.messageDigest, messageDigest))
        }
        for (name, value) in fields.reversed() { try header.add(name, value, atTop: true) }
    }

    /// Parameter names and values are restricted to a safe token alphabet.
    static func isToken(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".") || b == UInt8(ascii: ":")
        }
    }
}

extension HeaderSection {
    /// True for fields this toolkit owns (`X-SL-*`, any case).
    public static func isEnvelopeField(_ f: HeaderField) -> Bool {
        f.hasNamePrefix(Envelope.fieldPrefix)
    }

    /// Removes every `X-SL-*` field: on entry from outside (untrusted) and before a
    /// message leaves the pipeline.
    public mutating func removeEnvelopeFields() {
        remove(where: HeaderSection.isEnvelopeField)
    }
}

/// RFC 3461 section 4 xtext: printable ASCII except `+` and `=` stands for itself,
/// everything else is `+HH`. We also encode `;` so parameters can follow.
public enum XText {
    public static func encode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            if b >= 33 && b <= 126 && b != UInt8(ascii: "+") && b != UInt8(ascii: "=") && b != UInt8(ascii: ";") {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                out += "+" + String(b, radix: 16, uppercase: true).leftPadded(2)
            }
        }
        return out
    }

    public static func decode(_ s: String) -> String? {
        var bytes = Bytes()
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "+") {
                guard let h = it.popFirst(), let l = it.popFirst(),
                      let hv = TransferDecoding.hexValue(h), let lv = TransferDecoding.hexValue(l) else { return nil }
                bytes.append(hv << 4 | lv)
            } else if b >= 33 && b <= 126 && b != UInt8(ascii: "=") {
                bytes.append(b)
            } else {
                return nil
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

extension String {
    func leftPadded(_ n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String { String(self).trimmingCharacters(in: set) }
}
