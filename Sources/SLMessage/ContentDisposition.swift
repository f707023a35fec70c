// RFC 2183: the Content-Disposition field, `inline` or `attachment` plus parameters
// (filename, size, dates). Same syntax as Content-Type parameters, RFC 2231 included.

public struct ContentDisposition: Sendable, Equatable {
    /// The disposition type, lowercased: "inline", "attachment", or another token.
    public var disposition: String
    /// Parameter names lowercased, values decoded.
    public var parameters: [String: String]

    public init(disposition: String, parameters: [String: String] = [:]) {
        self.disposition = disposition.lowercased()
        var p: [String: String] = [:]
        for (k, v) in parameters { p[k.lowercased()] = v }
        self.parameters = p
    }

    /// Parses a field value. Never throws: a missing or malformed disposition type is
    /// read as "attachment", which RFC 2183 2.8 asks of unrecognised types and which is
    /// the cautious choice (never render unknown content inline). Parameters are kept.
    public init(parsing value: String) {
        let (head, parameters) = MIMEParameters.parse(value)
        let type = MIMEParameters.isToken(head.utf8) ? head : "attachment"
        self.init(disposition: type, parameters: parameters)
    }

    public var isInline: Bool { disposition == "inline" }

    public func parameter(_ name: String) -> String? { parameters[name.lowercased()] }

    /// The suggested file name, decoded. Untrusted: callers must not use it as a path.
    public var filename: String? { parameter("filename") }

    /// The value serialised for a header field (see `ContentType.headerValue`).
    public var headerValue: String { disposition + MIMEParameters.serialize(parameters) }
}
