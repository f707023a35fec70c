import Foundation
import HTTPTypes
import Hummingbird
import SLHTML
import SLMessage

/// A message's HTML part as the document of its frame on the message page:
/// sanitized to an allowlist (SLHTML), `cid:` images pointed at this message's own
/// parts, and served under a policy of its own that allows no script, no remote
/// content and no framing but ours. Three layers, any one of which stops a script:
/// the sanitizer, the frame's sandbox, the policy.
extension Reading {
    func html(_ request: Request, _ context: PortalContext) async -> Response {
        switch await open(request, context) {
        case .failure(let refused): return refused.response
        case .success(let (id, reader, opened)):
            guard let view = try? MessageView(message: opened.bytes), let k = Self.partNumber(context),
                  k < view.parts.count, view.parts[k].kind == .html else { return Reply.notFound(base: base) }
            let path = "\(base)/read/\(id)/\(reader.path)"
            let sanitizer = HTMLSanitizer { cid in
                view.part(contentID: cid).flatMap { Self.inlineTypes.contains($0.type) ? "\(path)/cid/\($0.number)" : nil }
            }
            let document = """
                <!doctype html>
                <html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><base target="_blank"></head>
                <body>
                \(sanitizer.sanitize(view.parts[k].text ?? ""))
                </body></html>

                """
            var response = Reply.html(.ok, document)
            response.headers[HTTPField.Name("Content-Security-Policy")!] = PortalMiddleware.framePolicy
            return response
        }
    }
}
