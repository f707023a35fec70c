#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import SLEscrow
import SLMessage
import SLPolicy

/// sl-portal without its argument parsing: question-mode pickup of escrowed
/// messages over HTTPS with its own certificate (TLS 1.2 or later, any address), or
/// over plain HTTP on a loopback address behind a reverse proxy that terminates TLS.
/// Everything about a message's state, links, answers and attempts is SLEscrow's;
/// this is the web in front of `EscrowStore.preview` and `open`.
public struct Portal {
    public let host: String
    public let port: Int
    /// The path of escrow_url ("/sl-escrow"), or "" for a URL without one.
    public let base: String
    /// HTTPS with this, else plain HTTP behind a proxy.
    let tls: TLSConfiguration?
    /// Whether a loopback peer's X-Forwarded-For names the client.
    let behindProxy: Bool
    let state: PortalState

    /// The most a form may send; a link, a token and an answer fit many times over.
    static let bodyLimit = 64 * 1024
    /// Seconds a connection may stay silent (between requests or within one).
    static let idleSeconds: Int64 = 15
    /// How long a request waits for a free derivation slot before a 503.
    static let patience: Duration = .seconds(3)

    public init(_ installation: InstallationSettings, source: String, storeDirectory: String?) throws {
        host = installation.portal.listenHost
        port = installation.portal.listenPort
        behindProxy = installation.portal.behindProxy
        tls = try Self.transport(installation.portal, source: source)
        let context = try EscrowContext(installation, source: source, storeDirectory: storeDirectory, tool: "sl-portal")
        base = Self.basePath(of: context.portal)
        let slots = max(1, ProcessInfo.processInfo.activeProcessorCount)
        var stores = [context.store]
        for _ in 1..<slots { stores.append(try context.anotherStore()) }
        let readers = try (0..<slots).map { _ in try context.anotherStore() }
        let kdf: KDFParameters
        do {
            kdf = try KDFParameters(opsLimit: installation.escrow.kdfPasses, memoryLimit: installation.escrow.kdfMemoryMiB * 1024 * 1024)
        } catch {
            throw ConfigurationError(source, 0, "escrow_kdf_passes/escrow_kdf_memory: \(error)")
        }
        // Account mail needs the configuration file for sl-deliver; without one
        // (built-in defaults) the portal offers no password links.
        let mailer = FileManager.default.fileExists(atPath: source) ? AccountMailer(configuration: source) : nil
        state = PortalState(
            base: base, publicURL: context.portal, pool: StorePool(stores: stores, patience: Self.patience),
            readers: StorePool(stores: readers, patience: Self.patience),
            sessions: SessionTable(lifetime: TimeInterval(installation.portal.sessionMinutes * 60)),
            limiter: AttemptLimiter(perMinute: installation.portal.attemptsPerMinute),
            mailer: mailer, audit: installation.effectiveAuditLog, kdf: kdf, messageCenter: installation.escrow.messageCenter,
            behindProxy: behindProxy, mailFrom: installation.escrow.noticeFrom ?? "postmaster@\(context.hostname)",
            hostname: context.hostname)
        let settings = installation.portal
        let submit = settings.submitCommand
            ?? Handover.beside("sl-send").map { [$0, "--config", source, "--no-ask"] }
        state.submitter = submit.map(Handover.init(argv:))
        state.maxReplies = settings.maxReplies
        state.uploadLimit = settings.uploadLimitMiB * 1024 * 1024
        if settings.secureSend {
            guard !settings.secureSendRecipients.isEmpty else {
                throw ConfigurationError(source, 0, "portal_securesend = yes needs portal_securesend_recipients (the addresses or domains the form may write to)")
            }
            state.secureSend = PortalState.SecureSendSettings(recipients: settings.secureSendRecipients, daily: settings.secureSendDaily,
                                                             expiry: settings.secureSendExpiryHours * 3600)
        }
    }

    /// The TLS settings from the certificate and key, or nil for plain HTTP behind a
    /// proxy on loopback; anything else is a configuration error naming what to set
    /// or which file is wrong.
    static func transport(_ settings: InstallationSettings.Portal, source: String) throws -> TLSConfiguration? {
        func problem(_ text: String) -> ConfigurationError { ConfigurationError(source, 0, text) }
        switch (settings.tlsCertificate, settings.tlsKey) {
        case (let certificate?, let key?):
            return try tlsConfiguration(certificate: certificate, key: key, source: source)
        case (let certificate?, nil):
            throw problem("portal_tls_certificate = \(certificate) is set without portal_tls_key: set both to serve HTTPS")
        case (nil, let key?):
            throw problem("portal_tls_key = \(key) is set without portal_tls_certificate: set both to serve HTTPS")
        case (nil, nil):
            guard settings.behindProxy else {
                throw problem("no TLS: set portal_tls_certificate and portal_tls_key to serve HTTPS, or portal_behind_proxy = yes to serve plain HTTP on a loopback address behind a reverse proxy that terminates TLS")
            }
            guard isLoopback(settings.listenHost) else {
                throw problem("portal_listen: \(settings.listenHost) is not a loopback address: with portal_behind_proxy = yes the portal serves plain HTTP on 127.0.0.1 or ::1 only; set portal_tls_certificate and portal_tls_key to serve HTTPS on it")
            }
            return nil
        }
    }

    /// TLS 1.2 or later with the certificate (and the chain after it) and its key,
    /// checked now: unreadable, unparsable or mismatched files stop the start.
    static func tlsConfiguration(certificate: String, key: String, source: String) throws -> TLSConfiguration {
        func problem(_ text: String) -> ConfigurationError { ConfigurationError(source, 0, text) }
        guard let certificateBytes = FileManager.default.contents(atPath: certificate) else {
            throw problem("portal_tls_certificate: \(certificate) cannot be read")
        }
        guard let chain = try? NIOSSLCertificate.fromPEMBytes(Array(certificateBytes)), !chain.isEmpty else {
            throw problem("portal_tls_certificate: \(certificate) holds no PEM certificate")
        }
        guard let keyBytes = FileManager.default.contents(atPath: key) else {
            throw problem("portal_tls_key: \(key) cannot be read")
        }
        guard let privateKey = try? NIOSSLPrivateKey(bytes: Array(keyBytes), format: .pem) else {
            throw problem("portal_tls_key: \(key) holds no unencrypted PEM private key")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        do {
            _ = try NIOSSLContext(configuration: configuration)
        } catch {
            throw problem("portal_tls_key: \(key) does not match the certificate in \(certificate)")
        }
        return configuration
    }

    public static func isLoopback(_ host: String) -> Bool {
        if host == "::1" || host.lowercased() == "localhost" { return true }
        if host.lowercased().hasPrefix("::ffff:") { return isLoopback(String(host.dropFirst(7))) }
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
        // A submit command or sl-deliver that exits before reading all of a
        // message must not kill the portal with SIGPIPE: the write fails instead.
        signal(SIGPIPE, SIG_IGN)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let router = Router(context: PortalContext.self)
        router.add(middleware: PortalMiddleware(base: base, tls: tls != nil, behindProxy: behindProxy))
        Self.routes(router, state)

        let displayHost = host.contains(":") ? "[\(host)]" : host
        let served = base.isEmpty ? "/" : base
        let how = tls == nil ? "plain HTTP behind a proxy" : "HTTPS, TLS 1.2 or later"
        // A client that sends nothing for this long loses its connection: slow or
        // stalled clients cannot hold connections open without end.
        let http = HTTPServerBuilder.http1(configuration: .init(idleTimeout: .seconds(Self.idleSeconds)))
        let server: HTTPServerBuilder = try tls.map { try .tls(http, tlsConfiguration: $0) } ?? http
        let app = Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? 0
                PortalLog.line("listening on \(displayHost):\(bound) (\(how)), serving \(served)")
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

    /// Every address the portal answers, under escrow_url's path. Fixed words come
    /// before the `{id}/{n}` of notice links; an id is 32 hex digits, so none clash.
    static func routes(_ router: Router<PortalContext>, _ state: PortalState) {
        let base = state.base
        let pickup = Pickup(state: state), reading = Reading(state: state), accounts = Accounts(state: state)
        router.get(RouterPath("\(base)/static/pickup.js")) { _, _ in
            Reply.file(Pages.pickupScript, type: "text/javascript; charset=utf-8")
        }
        router.get(RouterPath("\(base)/static/portal.css")) { _, _ in
            Reply.file(Pages.stylesheet, type: "text/css; charset=utf-8")
        }
        router.get(RouterPath("\(base)/t/:token")) { r, c in await TrackingImage(state: state).fetch(r, c) }
        router.get(RouterPath("\(base)/account")) { r, c in accounts.signInPage(r, c) }
        router.post(RouterPath("\(base)/account")) { r, c in await accounts.signIn(r, c) }
        router.get(RouterPath("\(base)/account/reset")) { r, c in accounts.resetPage(r, c) }
        router.post(RouterPath("\(base)/account/reset")) { r, c in await accounts.requestReset(r, c) }
        router.get(RouterPath("\(base)/account/password")) { r, c in accounts.newPasswordPage(r, c) }
        router.post(RouterPath("\(base)/account/password")) { r, c in await accounts.setNewPassword(r, c) }
        router.get(RouterPath("\(base)/messages")) { r, c in await accounts.center(r, c) }
        router.post(RouterPath("\(base)/messages/:id/retract")) { r, c in await accounts.retract(r, c) }
        router.post(RouterPath("\(base)/logout")) { r, c in await accounts.signOut(r, c) }
        router.get(RouterPath("\(base)/read/:id/:n")) { r, c in await reading.view(r, c) }
        router.get(RouterPath("\(base)/read/:id/:n/part/:k")) { r, c in await reading.part(r, c) }
        router.get(RouterPath("\(base)/read/:id/:n/html/:k")) { r, c in await reading.html(r, c) }
        router.get(RouterPath("\(base)/read/:id/:n/eml")) { r, c in await reading.original(r, c) }
        router.post(RouterPath("\(base)/read/:id/:n/reply")) { r, c in await reading.reply(r, c) }
        let send = SecureSend(state: state)
        router.get(RouterPath("\(base)/send")) { r, c in await send.page(r, c) }
        router.post(RouterPath("\(base)/send")) { r, c in await send.submit(r, c) }
        router.get(RouterPath("\(base)/send/verify")) { r, c in send.verifyPage(r, c) }
        router.post(RouterPath("\(base)/send/verify")) { r, c in await send.verify(r, c) }
        router.get(RouterPath("\(base)/:id/:n")) { r, c in pickup.page(r, c) }
        router.post(RouterPath("\(base)/:id/:n")) { r, c in await pickup.answer(r, c) }
    }
}

extension HTTPField.Name {
    static let contentSecurityPolicy = Self("Content-Security-Policy")!
    static let strictTransportSecurity = Self("Strict-Transport-Security")!
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
    static let referrerPolicy = Self("Referrer-Policy")!
    static let xForwardedFor = Self("X-Forwarded-For")!
}

/// The portal's own lines on stderr: one per request, and start and stop.
enum PortalLog {
    /// One write(2) of the whole line, control characters made spaces (a path or
    /// an error may hold anything): lines from many requests never interleave.
    static func line(_ text: String) {
        var bytes = Array("sl-portal: ".utf8)
        bytes.reserveCapacity(bytes.count + text.utf8.count + 1)
        for b in text.utf8 { bytes.append(b < 0x20 || b == 0x7F ? 0x20 : b) }
        bytes.append(0x0A)
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
    }
}

/// A request's context: the router's, and the address the connection comes from.
struct PortalContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

/// On every response, errors included: the security headers (and HSTS over TLS), and
/// one log line with client address, method, path (which holds only id and recipient
/// number; secrets and answers travel in bodies), status and duration.
struct PortalMiddleware: RouterMiddleware {
    typealias Context = PortalContext
    let base: String
    /// Serving HTTPS itself: every response gets Strict-Transport-Security.
    let tls: Bool
    /// Behind a proxy: a loopback peer's last X-Forwarded-For entry is the client.
    let behindProxy: Bool

    static let hsts = "max-age=31536000"

    /// Our pages: our own script and stylesheet only; the message page may frame
    /// its HTML parts, which come from this portal.
    static func policy(frames: Bool = false) -> String {
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
            + (frames ? "frame-src 'self'; " : "") + "frame-ancestors 'none'; base-uri 'none'"
    }

    /// A message's HTML part, in its frame: no script at all (sandbox without
    /// allow-scripts, and no script-src), images only inline (its own cid: parts as
    /// data: URLs), inline styles (sanitized), framed only by our message page.
    static let framePolicy = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox allow-popups allow-popups-to-escape-sandbox"

    static let securityHeaders: [(HTTPField.Name, String)] = [
        (.xContentTypeOptions, "nosniff"),
        (.referrerPolicy, "no-referrer"),
        (.cacheControl, "no-store"),
    ]
    /// The policy of every page that does not set its own, made once.
    static let defaultPolicy = policy()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = Self.errorPage(base: base, status: error.status)
        } catch {
            PortalLog.line("\(request.method) \(Self.loggable(request.uri.path, base: base)): \(error)")
            response = Self.errorPage(base: base, status: .internalServerError)
        }
        for (name, value) in Self.securityHeaders {
            response.headers[name] = value
        }
        if response.headers[.contentSecurityPolicy] == nil { response.headers[.contentSecurityPolicy] = Self.defaultPolicy }
        if tls { response.headers[.strictTransportSecurity] = Self.hsts }
        let elapsed = ContinuousClock.now - start
        // Tenths of a millisecond, without a formatter: this runs for every request.
        let tenths = elapsed.components.seconds * 10_000 + elapsed.components.attoseconds / 100_000_000_000_000
        let forwarded = request.headers[values: .xForwardedFor]
        let who = Self.client(peer: context.remoteAddress?.ipAddress, forwardedFor: forwarded, behindProxy: behindProxy)
        PortalLog.line("\(who) \(request.method) \(Self.loggable(request.uri.path, base: base)) \(response.status.code) \(tenths / 10).\(tenths % 10)ms")
        return response
    }

    /// The client for the log: the peer, unless behind a proxy and the peer is a
    /// loopback address (the proxy), whose last X-Forwarded-For entry then names it.
    /// Elsewhere the header is never believed.
    static func client(peer: String?, forwardedFor: [String], behindProxy: Bool) -> String {
        let connection = peer ?? "-"
        guard behindProxy, let peer, Portal.isLoopback(peer),
              let last = forwardedFor.last?.split(separator: ",").last?.trimmingCharacters(in: .whitespaces),
              !last.isEmpty, last.count <= 45,
              last.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == ":" }) else { return connection }
        return last
    }

    static func loggable(_ path: String, base: String) -> String {
        let path = TrackingImage.withoutToken(path, base: base)
        return path.count > 200 ? String(path.prefix(200)) + "..." : path
    }

    static func errorPage(base: String, status: HTTPResponse.Status) -> Response {
        switch status.code {
        case 404: return Reply.notFound(base: base)
        case 405: return Reply.html(status, Pages.notice(base: base, title: "Not allowed", "This address does not take that kind of request."))
        case 413: return Reply.tooLarge(base: base)
        case 400..<500: return Reply.html(status, Pages.notice(base: base, title: "Bad request", "The portal could not understand that request."))
        default: return Reply.failure(base: base)
        }
    }
}
