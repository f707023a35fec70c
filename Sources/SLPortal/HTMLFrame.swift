import Foundation
import HTTPTypes
import Hummingbird
import SLHTML
import SLMessage

/// A message's HTML part as the document of its frame on the message page:
/// sanitized to an allowlist (SLHTML), `cid:` images replaced by this message's own
/// parts as data: URLs (raster types only), and served under a policy of its own that allows no script, no remote
/// content and no framing but ours. Three layers, any one of which stops a script:
/// the sanitizer, the frame's sandbox, the policy.
extension Reading {
    static let inlineTypes: Set = ["image/png", "image/jpeg", "image/gif", "image/webp"]
    static let inlineImageLimit = 5 * 1024 * 1024

    func html(_ request: Request, _ context: PortalContext) async -> Response {
        switch await open(request, context) {
        case .failure(let refused): return refused.response
        case .success(let (_, _, opened)):
            guard let view = try? MessageView(message: opened.bytes), let k = Self.partNumber(context),
                  k < view.parts.count, view.parts[k].kind == .html else { return Reply.notFound(base: base) }
            // The frame is sandboxed into an origin of its own, which our session
            // cookie (SameSite=Strict) never reaches: its images come inline.
            let sanitizer = HTMLSanitizer { cid in
                view.part(contentID: cid).flatMap { part in
                    Self.inlineTypes.contains(part.type) && part.body.count <= Self.inlineImageLimit
                        ? "data:\(part.type);base64,\(Data(part.body).base64EncodedString())" : nil
                }
            }
            let document = """
                <!doctype html>
                <html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><base target="_blank"></head>
                <body>
                \(sanitizer.sanitize(view.parts[k].text ?? ""))
                </body></html>

                """
            var response = Reply.html(.ok, document)
            response.headers[.contentSecurityPolicy] = PortalMiddleware.framePolicy
            return response
        }
    }
}
