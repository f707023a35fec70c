// RFC 2045 section 5: the Content-Type field, `type/subtype; parameter=value ...`.
// Type, subtype and parameter names are case-insensitive, so they are stored lowercased;
// parameter values keep their case (a boundary is case-sensitive) and are stored fully
// decoded (quotes removed, RFC 2231 sections joined and charset-converted).

public struct ContentType: Sendable, Equatable {
    public var type: String
    public var subtype: String
    /// Parameter names lowercased, values decoded.
    public var parameters: [String: String]

    public init(type: String, subtype: String, parameters: [String: String] = [:]) {
        self.type = type.lowercased()
        self.subtype = subtype.lowercased()
        var p: [String: String] = [:]
        for (k, v) in parameters { p[k.lowercased()] = v }
        self.parameters = p
    }

    /// RFC 2045 5.2: a missing Content-Type means `text/plain; charset=us-ascii`.
    public static let defaultPlain = ContentType(type: "text", subtype: "plain", parameters: ["charset": "us-ascii"])

    /// RFC 2046 5.1.5: inside multipart/digest a part without Content-Type is a message.
    public static let defaultDigestPart = ContentType(type: "message", subtype: "rfc822")

    /// Parses a field value (unfolded, not RFC 2047 decoded). Never throws: a value whose
    /// `type/subtype` is not two tokens is treated as absent, which RFC 2045 5.2 says
    /// means `text/plain; charset=us-ascii` (its parameters are not trusted either).
    public init(parsing value: String) {
        let (head, parameters) = MIMEParameters.parse(value)
        let pieces = head.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard pieces.count == 2, MIMEParameters.isToken(pieces[0].utf8), MIMEParameters.isToken(pieces[1].utf8) else {
            self = .defaultPlain
            return
        }
        self.init(type: String(pieces[0]), subtype: String(pieces[1]), parameters: parameters)
    }

    /// `type/subtype`, lowercased.
    public var mimeType: String { (type + "/" + subtype).lowercased() }

    public var isMultipart: Bool { type.lowercased() == "multipart" }

    /// The decoded value of a parameter, by case-insensitive name.
    public func parameter(_ name: String) -> String? { parameters[name.lowercased()] }

    /// The multipart boundary, when there is a usable one.
    public var boundary: String? {
        guard let b = parameter("boundary"), !b.isEmpty else { return nil }
        return b
    }

    /// The charset parameter, lowercased, if any.
    public var charset: String? { parameter("charset")?.lowercased() }

    /// The value serialised for a header field: parameters sorted by name, quoted when
    /// they are not tokens, RFC 2231 `utf-8''` when they are not ASCII, and split into
    /// RFC 2231 sections when long (so the field can be folded under 78 characters).
    /// Parameters whose names are not tokens are left out.
    public var headerValue: String { mimeType + MIMEParameters.serialize(parameters) }
}
