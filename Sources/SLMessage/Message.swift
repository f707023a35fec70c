/// One message of a stream: its mbox `From ` line (if it came in an mbox), its header
/// section as it arrived, and its body in a spool. Copies share the body, so splitting a
/// message into one copy per method group costs headers only.
public struct Message: Sendable {
    /// The mbox `From ` line including its line feed, or nil for a bare message.
    public var fromLine: Bytes?
    public var header: HeaderSection
    public var body: Spool
    /// 1-based position in the input stream, for error messages.
    public var index: Int

    public init(fromLine: Bytes? = nil, header: HeaderSection, body: Spool, index: Int = 1) {
        self.fromLine = fromLine
        self.header = header
        self.body = body
        self.index = index
    }

    /// Parses a whole message held in memory (tests, small generated messages).
    public init(bytes: Bytes) throws {
        var reader = MessageStreamReader(MemorySource(bytes), framing: .bare)
        guard let m = try reader.next() else { throw MessageError.malformed("empty message") }
        self = m
    }

    /// The message as bytes (header section then body), without mbox framing.
    public func bytes() throws -> Bytes {
        try header.bytes + body.readAll()
    }
}
