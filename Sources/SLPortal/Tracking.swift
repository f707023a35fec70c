import Foundation
import HTTPTypes
import Hummingbird
import SLEscrow
import SLMessage

/// Open tracking's image, `{base}/t/{token}` (see Tracking.swift in SLEscrow): the
/// fetch is recorded, and the answer is always the same transparent 1x1 GIF,
/// whether the token is known, malformed, or the store is busy, so the address
/// tells a prober nothing (no oracle for guessing tokens). The token is a secret
/// of the copy it was put into: the request log shows `/t/…` (`withoutToken`).
struct TrackingImage: Sendable {
    let state: PortalState
    var base: String { state.base }

    /// GIF89a, 1x1, one transparent colour: the smallest image every client shows.
    static let gif: [UInt8] = [
        0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0xFF, 0xFF, 0xFF, 0x21, 0xF9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2C, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B,
    ]

    func fetch(_ request: Request, _ context: PortalContext) async -> Response {
        if let token = context.parameters.get("token"), token.utf8.count <= 64 {
            do {
                try await state.readers.run { _ = try $0.recordFetch(token: token, now: Date()) }
            } catch is StorePool.Busy {
                // the fetch goes unrecorded rather than the client waiting on
            } catch {
                PortalLog.line("GET \(base)/t/…: \(error)")
            }
        }
        var headers = HTTPFields()
        headers[.contentType] = "image/gif"
        headers[.contentLength] = String(Self.gif.count)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: Self.gif)))
    }

    /// A request path for the log: a tracking image's token elided.
    static func withoutToken(_ path: String, base: String) -> String {
        let prefix = base + "/t/"
        return path.hasPrefix(prefix) ? prefix + "…" : path
    }
}
