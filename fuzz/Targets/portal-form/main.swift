import Foundation
import Hummingbird
@testable import SLPortal

/// The portal's form and cookie parsing (SLPortal/Forms.swift: Form.parse for
/// application/x-www-form-urlencoded bodies; CSRF.token(from:) over Hummingbird's
/// Cookie header parsing). Invariants: never traps; the pairs parsed, encoded
/// again, parse to the same pairs; a CSRF token taken from a Cookie header is a
/// token (43 base64url characters) that the header holds.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    let fields = Form.parse(text)
    let encoded = fields.map { encode($0.key) + "=" + encode($0.value) }.joined(separator: "&")
    let again = Form.parse(encoded)
    precondition(again == fields, "form pairs encoded again parse otherwise: \(fields) -> \(encoded) -> \(again)")

    // A Cookie header may not hold CR, LF or NUL (HTTP would not deliver it).
    if !bytes.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) {
        let request = Request(
            head: HTTPRequest(method: .post, scheme: "https", authority: "portal.example", path: "/", headerFields: [.cookie: text]),
            body: RequestBody(buffer: ByteBuffer()))
        if let token = CSRF.token(from: request) {
            precondition(Tokens.isToken(token) && text.contains(token), "a CSRF token \(token) not from the header or not a token")
        }
    }
    return 0
}

let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

func encode(_ s: String) -> String {
    s.addingPercentEncoding(withAllowedCharacters: unreserved)!
}
