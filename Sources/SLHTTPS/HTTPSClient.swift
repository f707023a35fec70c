// GET over HTTPS through libcurl, for web key directories (sl-contacts) and
// MTA-STS policies (SLTransport). Only https: URLs, the server's certificate
// verified for the URL's host against the system CAs (or the CA file given), no
// redirects followed, a size limit and timeouts. One owning wrapper over the easy
// handle; nothing of libcurl leaves this file.
internal import CCurl
internal import COpenSSL
import Foundation
import SLMessage

public struct HTTPSOptions: Sendable, Equatable {
    /// curl's --resolve: "HOST:PORT:ADDRESS[,ADDRESS...]" entries that pin where a
    /// name connects (a test server on loopback, or the addresses sl's own DNS
    /// layer found, so that one resolver decides).
    public var resolve: [String]
    /// curl's --cacert: trust the CA certificates in this PEM file instead of the system's.
    public var caFile: String?
    public var timeoutSeconds: Int
    public var maximumSize: Int
    /// Sent as User-Agent.
    public var userAgent: String
    /// Ignore http_proxy, https_proxy and the like: the connection goes where
    /// `resolve` says, or nowhere.
    public var ignoresProxies: Bool

    public init(resolve: [String] = [], caFile: String? = nil, timeoutSeconds: Int = 30, maximumSize: Int = 4 << 20,
                userAgent: String = "sl-contacts", ignoresProxies: Bool = false) {
        self.resolve = resolve
        self.caFile = caFile
        self.timeoutSeconds = timeoutSeconds
        self.maximumSize = maximumSize
        self.userAgent = userAgent
        self.ignoresProxies = ignoresProxies
    }
}

public enum HTTPSResponse: Sendable, Equatable {
    case body(Bytes)
    /// Any status but 200.
    case status(Int)
    /// The host name does not resolve.
    case noSuchHost
}

/// A complete answer: status, media type and body (at most `maximumSize` bytes).
public struct HTTPSReply: Sendable, Equatable {
    public var status: Int
    /// The Content-Type field as sent, nil when absent.
    public var contentType: String?
    public var body: Bytes
}

/// Why a fetch gave no answer, in one line. Each caller says what it means for
/// its own work (a key not fetched, a policy not refreshed).
public struct HTTPSError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Not an https: URL, or an option libcurl refuses: our mistake.
        case usage
        /// The body is longer than the limit.
        case tooLarge
        /// The server's certificate did not verify for the host (WebPKI).
        case certificate
        /// Anything else: connect, time-out, TLS, a broken transfer. May work later.
        case transfer
    }
    public let kind: Kind
    public let description: String
    public init(_ kind: Kind, _ description: String) { self.kind = kind; self.description = description }
}

extension HTTPSError: SysexitReporting {
    public var sysexit: Sysexit { kind == .usage ? .usage : .tempFail }
}

public enum HTTPSClient {
    /// Why libcurl cannot be used, or nil once it is loaded and initialised.
    private static let unavailable: String? = {
        var error: UnsafePointer<CChar>?
        return sl_curl_load(&error) ? nil : (error.map { String(cString: $0) } ?? "unknown error")
    }()

    /// GETs `url`: the body on 200, the status otherwise. Throws `HTTPSError`.
    public static func get(_ url: String, options: HTTPSOptions) throws -> HTTPSResponse {
        guard let reply = try fetch(url, options: options) else { return .noSuchHost }
        return reply.status == 200 ? .body(reply.body) : .status(reply.status)
    }

    /// GETs `url`; nil when its host name does not resolve. Throws `HTTPSError`.
    public static func fetch(_ url: String, options: HTTPSOptions) throws -> HTTPSReply? {
        if let why = unavailable { throw HTTPSError(.transfer, "cannot load libcurl: \(why) (apt-get install libcurl4)") }
        guard let easy = CurlEasy.ofThisThread() else { throw HTTPSError(.transfer, "cannot start libcurl") }
        return try easy.get(url, options: options)
    }
}

/// Owns a CURL easy handle, its error buffer and the --resolve list. One per
/// thread, kept for the thread's next fetch: libcurl then keeps the CA store it
/// loaded (its CA cache, curl 7.87 and later) instead of reading the trust
/// anchors again for every fetch, which was most of a cold MTA-STS verdict's cost
/// (bench/tls-probe). Every fetch starts from reset options and a new connection.
private final class CurlEasy {
    static func ofThisThread() -> CurlEasy? {
        let key = "sl.https.curl"
        if let kept = Thread.current.threadDictionary[key] as? CurlEasy { return kept }
        guard let made = CurlEasy() else { return nil }
        Thread.current.threadDictionary[key] = made
        return made
    }

    let handle: UnsafeMutableRawPointer
    let errorBuffer: UnsafeMutablePointer<CChar>
    var resolveList: UnsafeMutablePointer<curl_slist>?

    final class Sink {
        var bytes: Bytes = []
        let limit: Int
        var overflow = false
        init(limit: Int) { self.limit = limit }
    }

    init?() {
        guard let h = sl_curl_easy_init() else { return nil }
        handle = h
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        sl_curl_easy_cleanup(handle)
        if let resolveList { sl_curl_slist_free_all(resolveList) }
        errorBuffer.deallocate()
    }

    private func set(_ option: CURLoption, _ value: Int) throws {
        guard sl_curl_set_long(handle, option, value) == CURLE_OK else { throw HTTPSError(.usage, "libcurl refused option \(option.rawValue)") }
    }

    private func set(_ option: CURLoption, _ value: String) throws {
        guard sl_curl_set_string(handle, option, value) == CURLE_OK else { throw HTTPSError(.usage, "libcurl refused option \(option.rawValue)") }
    }

    func get(_ url: String, options: HTTPSOptions) throws -> HTTPSReply? {
        guard url.lowercased().hasPrefix("https://") else { throw HTTPSError(.usage, "only https: URLs are fetched") }
        // Nothing of the last fetch carries over but libcurl's caches: no option,
        // no --resolve entry, no connection.
        sl_curl_easy_reset(handle)
        if let resolveList { sl_curl_slist_free_all(resolveList); self.resolveList = nil }
        errorBuffer[0] = 0
        try set(CURLOPT_FRESH_CONNECT, 1)
        try set(CURLOPT_FORBID_REUSE, 1)
        try set(CURLOPT_URL, url)
        try set(CURLOPT_PROTOCOLS_STR, "https")
        try set(CURLOPT_REDIR_PROTOCOLS_STR, "https")
        try set(CURLOPT_FOLLOWLOCATION, 0)
        try set(CURLOPT_SSL_VERIFYPEER, 1)
        try set(CURLOPT_SSL_VERIFYHOST, 2)
        try set(CURLOPT_NOSIGNAL, 1)
        try set(CURLOPT_CONNECTTIMEOUT, max(1, min(options.timeoutSeconds, 15)))
        try set(CURLOPT_TIMEOUT, max(1, options.timeoutSeconds))
        try set(CURLOPT_MAXFILESIZE, options.maximumSize)
        try set(CURLOPT_USERAGENT, options.userAgent)
        // "" turns off every proxy, those from the environment included.
        if options.ignoresProxies { try set(CURLOPT_PROXY, "") }
        // The trust anchors come from a store loaded once per process (TrustAnchors),
        // handed to each connection's SSL_CTX, not read from files by libcurl per fetch.
        guard let anchors = TrustAnchors.store(caFile: options.caFile) else {
            throw HTTPSError(.usage, "cannot load the trust anchors \(options.caFile ?? "of the system")")
        }
        guard sl_curl_set_pointer(handle, CURLOPT_CAINFO, nil) == CURLE_OK, sl_curl_set_pointer(handle, CURLOPT_CAPATH, nil) == CURLE_OK,
              sl_curl_set_ssl_ctx(handle, { _, ctx, store in
                  guard let ctx, let store else { return CURLE_SSL_CERTPROBLEM }
                  // set1: the SSL_CTX takes its own reference to the shared store
                  SSL_CTX_set1_cert_store(OpaquePointer(ctx), OpaquePointer(store))
                  return CURLE_OK
              }, UnsafeMutableRawPointer(anchors)) == CURLE_OK else {
            throw HTTPSError(.usage, "libcurl refused the trust anchors")
        }
        for entry in options.resolve {
            guard let list = sl_curl_slist_append(resolveList, entry) else { throw HTTPSError(.transfer, "out of memory") }
            resolveList = list
        }
        if let resolveList {
            guard sl_curl_set_list(handle, CURLOPT_RESOLVE, resolveList) == CURLE_OK else {
                throw HTTPSError(.usage, "libcurl refused the --resolve entries")
            }
        }
        guard sl_curl_set_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer) == CURLE_OK else {
            throw HTTPSError(.transfer, "libcurl refused its error buffer")
        }
        let sink = Sink(limit: options.maximumSize)
        let box = Unmanaged.passRetained(sink)
        defer { box.release() }
        guard sl_curl_set_pointer(handle, CURLOPT_WRITEDATA, box.toOpaque()) == CURLE_OK,
              sl_curl_set_write(handle, { data, size, count, user in
                  guard let data, let user else { return 0 }
                  let sink = Unmanaged<CurlEasy.Sink>.fromOpaque(user).takeUnretainedValue()
                  let n = size * count
                  guard sink.bytes.count + n <= sink.limit else { sink.overflow = true; return 0 }
                  sink.bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: n))
                  return n
              }) == CURLE_OK else {
            throw HTTPSError(.transfer, "libcurl refused the write function")
        }
        let result = sl_curl_easy_perform(handle)
        if sink.overflow || result == CURLE_FILESIZE_EXCEEDED {
            throw HTTPSError(.tooLarge, "\(url) answered with more than \(Self.size(options.maximumSize))")
        }
        if result == CURLE_COULDNT_RESOLVE_HOST { return nil }
        guard result == CURLE_OK else {
            let detail = String(cString: errorBuffer)
            let reason = detail.isEmpty ? String(cString: sl_curl_easy_strerror(result)) : detail
            // CURLE_SSL_CACERT is the same number since curl 7.62.
            let kind: HTTPSError.Kind = result == CURLE_PEER_FAILED_VERIFICATION ? .certificate : .transfer
            throw HTTPSError(kind, "fetching \(url) failed: \(reason)")
        }
        var code = 0
        _ = sl_curl_response_code(handle, &code)
        var type: UnsafeMutablePointer<CChar>? = nil
        _ = sl_curl_content_type(handle, &type)
        // The server's words: only printable ASCII is kept.
        let contentType = type.map { String(decoding: Array(String(cString: $0).utf8.filter { $0 >= 0x20 && $0 < 0x7F }), as: UTF8.self) }
        return HTTPSReply(status: code, contentType: contentType, body: sink.bytes)
    }

    static func size(_ n: Int) -> String { n >= 1 << 20 ? "\(n >> 20) MiB" : "\(n >> 10) KiB" }
}

/// Trust anchors for HTTPS, loaded into an X509_STORE once per process per file
/// (or OpenSSL's default locations, looked up by hash as needed) and kept: loading
/// a PEM file through OpenSSL 3's decoders for every fetch was a third of a cold
/// MTA-STS verdict (bench/tls-probe). X509_STORE is safe to share between threads.
enum TrustAnchors {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var stores: [String: OpaquePointer] = [:]

    static func store(caFile: String?) -> OpaquePointer? {
        lock.lock(); defer { lock.unlock() }
        let key = caFile ?? ""
        if let s = stores[key] { return s }
        guard let s = X509_STORE_new() else { return nil }
        let loaded = caFile.map { X509_STORE_load_file(s, $0) == 1 } ?? (X509_STORE_set_default_paths(s) == 1)
        guard loaded else { X509_STORE_free(s); ERR_clear_error(); return nil }
        stores[key] = s
        return s
    }
}
