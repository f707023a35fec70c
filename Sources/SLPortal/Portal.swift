import Foundation
import HTTPTypes
import Hummingbird
import Logging
import SLEscrow
import SLMessage
import SLPolicy

/// sl-portal without its argument parsing: question-mode pickup of escrowed
/// messages over plain HTTP on a loopback address, behind a reverse proxy that
/// terminates TLS. Everything about a message's state, links, answers and attempts
/// is SLEscrow's; this is the web in front of `EscrowStore.preview` and `open`.
public struct Portal {
    public let host: String
    public let port: Int
    /// The path of escrow_url ("/sl-escrow"), or "" for a URL without one.
    public let base: String
    let pool: DerivationPool

    /// The most a form may send; a link, a token and an answer fit many times over.
    static let bodyLimit = 64 * 1024
    /// How long a request waits for a free derivation slot before a 503.
    static let patience: Duration = .seconds(3)

    public init(_ installation: InstallationSettings, source: String, storeDirectory: String?) throws {
        host = installation.portal.listenHost
        port = installation.portal.listenPort
        guard Self.isLoopback(host) else {
            throw ConfigurationError(source, 0, "portal_listen: \(host) is not a loopback address: this version speaks plain HTTP only (TLS is not implemented yet); listen on 127.0.0.1 or ::1 behind a reverse proxy that terminates TLS")
        }
        let context = try EscrowContext(installation, source: source, storeDirectory: storeDirectory, tool: "sl-portal")
        base = Self.basePath(of: context.portal)
        let slots = max(1, ProcessInfo.processInfo.activeProcessorCount)
        var stores = [context.store]
        for _ in 1..<slots { stores.append(try context.anotherStore()) }
        pool = DerivationPool(stores: stores, patience: Self.patience)
    }

    public static func isLoopback(_ host: String) -> Bool {
        if host == "::1" || host.lowercased() == "localhost" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    static func basePath(of url: String) -> String {
        var path = URLComponents(string: url)?.percentEncodedPath ?? ""
        while path.hasSuffix("/") { path.removeLast() }
        return path
    }

    /// Serves until SIGTERM or SIGINT, then finishes the requests in flight and returns.
    public func run() throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: PortalMiddleware(base: base))
        let pickup = Pickup(base: base, pool: pool)
        router.get(RouterPath("\(base)/static/pickup.js")) { _, _ in
            Pickup.file(Pages.pickupScript, type: "text/javascript; charset=utf-8")
        }
        router.get(RouterPath("\(base)/static/portal.css")) { _, _ in
            Pickup.file(Pages.stylesheet, type: "text/css; charset=utf-8")
        }
        router.get(RouterPath("\(base)/:id/:n")) { request, context in pickup.page(request, context) }
        router.post(RouterPath("\(base)/:id/:n")) { request, context in await pickup.answer(request, context) }

        let displayHost = host.contains(":") ? "[\(host)]" : host
        let served = base.isEmpty ? "/" : base
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? 0
                PortalLog.line("listening on \(displayHost):\(bound) (plain HTTP), serving \(served)")
            })
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint]) } catch { outcome.error = error }
            done.signal()
        }
        done.wait()
        if let error = outcome.error { throw error }
        PortalLog.line("stopped")
    }

    final class Outcome: @unchecked Sendable { var error: (any Error)? }
}

/// The portal's own lines on stderr: one per request, and start and stop.
enum PortalLog {
    static func line(_ text: String) {
        let safe = String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
        FileHandle.standardError.write(Data("sl-portal: \(safe)\n".utf8))
    }
}

/// On every response, errors included: the security headers, and one log line with
/// method, path (which holds only id and recipient number; secrets and answers travel
/// in bodies), status and duration.
struct PortalMiddleware<Context: RequestContext>: RouterMiddleware {
    let base: String

    static var securityHeaders: [(String, String)] {
        [("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
         ("X-Content-Type-Options", "nosniff"),
         ("Referrer-Policy", "no-referrer"),
         ("Cache-Control", "no-store")]
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = Self.errorPage(base: base, status: error.status)
        } catch {
            PortalLog.line("\(request.method) \(Self.loggable(request.uri.path)): \(error)")
            response = Self.errorPage(base: base, status: .internalServerError)
        }
        for (name, value) in Self.securityHeaders {
            response.headers[HTTPField.Name(name)!] = value
        }
        let elapsed = ContinuousClock.now - start
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        PortalLog.line("\(request.method) \(Self.loggable(request.uri.path)) \(response.status.code) \(String(format: "%.1f", ms))ms")
        return response
    }

    static func loggable(_ path: String) -> String { path.count > 200 ? String(path.prefix(200)) + "..." : path }

    static func errorPage(base: String, status: HTTPResponse.Status) -> Response {
        switch status.code {
        case 404: return Pickup.notFound(base: base)
        case 405: return Pickup.html(status, Pages.notice(base: base, title: "Not allowed", "This address does not take that kind of request."))
        case 413: return Pickup.html(status, Pages.notice(base: base, title: "Too large", "That form was larger than this portal accepts."))
        case 400..<500: return Pickup.html(status, Pages.notice(base: base, title: "Bad request", "The portal could not understand that request."))
        default: return Pickup.html(.internalServerError, Pages.notice(base: base, title: "Something went wrong", "The message cannot be shown right now; please try again later."))
        }
    }
}
