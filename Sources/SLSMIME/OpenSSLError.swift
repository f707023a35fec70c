import COpenSSL

/// An OpenSSL failure in words: the error queue is drained into one line, never
/// printed raw, and the queue is left empty for the next operation.
public struct SMIMEError: Error, CustomStringConvertible, Equatable {
    public let description: String

    init(_ what: String) {
        var reasons: [String] = []
        while true {
            let e = ERR_get_error()
            if e == 0 { break }
            if let r = ERR_reason_error_string(e) { reasons.append(String(cString: r)) }
        }
        description = reasons.isEmpty ? what : "\(what): \(reasons.joined(separator: "; "))"
    }

    init(plain: String) { description = plain }
}
