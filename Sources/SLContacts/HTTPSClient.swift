// GET over HTTPS through libcurl, for web key directories. Only https: URLs, the
// server's certificate verified against the system CAs (or the --ca-file given),
// no redirects followed, a size limit and timeouts. One owning wrapper over the
// easy handle; nothing of libcurl leaves this file.
internal import CCurl
import SLMessage

public struct HTTPSOptions: Sendable, Equatable {
    /// curl's --resolve: "HOST:PORT:ADDRESS" entries that pin where a name connects
    /// (a test server on loopback, or a server the DNS does not know yet).
    public var resolve: [String]
    /// curl's --cacert: trust the CA certificates in this PEM file instead of the system's.
    public var caFile: String?
    public var timeoutSeconds: Int
    public var maximumSize: Int

    public init(resolve: [String] = [], caFile: String? = nil, timeoutSeconds: Int = 30, maximumSize: Int = 4 << 20) {
        self.resolve = resolve
        self.caFile = caFile
        self.timeoutSeconds = timeoutSeconds
        self.maximumSize = maximumSize
    }
}

public enum HTTPSResponse: Sendable, Equatable {
    case body(Bytes)
    /// Any status but 200.
    case status(Int)
    /// The host name does not resolve.
    case noSuchHost
}

public enum HTTPSClient {
    private static let initialised: Bool = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK }()

    /// GETs `url`; throws `ContactsError(.temporary)` when the transfer fails (a
    /// certificate that does not verify included), with curl's reason.
    public static func get(_ url: String, options: HTTPSOptions) throws -> HTTPSResponse {
        guard initialised, let easy = CurlEasy() else { throw ContactsError(.temporary, "cannot start libcurl") }
        return try easy.get(url, options: options)
    }
}

/// Owns a CURL easy handle, its error buffer and the --resolve list.
private final class CurlEasy {
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
        guard let h = curl_easy_init() else { return nil }
        handle = h
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(handle)
        if let resolveList { curl_slist_free_all(resolveList) }
        errorBuffer.deallocate()
    }

    private func set(_ option: CURLoption, _ value: Int) throws {
        guard sl_curl_set_long(handle, option, value) == CURLE_OK else { throw ContactsError(.temporary, "libcurl refused option \(option.rawValue)") }
    }

    private func set(_ option: CURLoption, _ value: String) throws {
        guard sl_curl_set_string(handle, option, value) == CURLE_OK else { throw ContactsError(.temporary, "libcurl refused option \(option.rawValue)") }
    }

    func get(_ url: String, options: HTTPSOptions) throws -> HTTPSResponse {
        guard url.lowercased().hasPrefix("https://") else { throw ContactsError(.usage, "only https: URLs are fetched") }
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
        try set(CURLOPT_USERAGENT, "sl-contacts")
        if let ca = options.caFile { try set(CURLOPT_CAINFO, ca) }
        for entry in options.resolve {
            guard let list = curl_slist_append(resolveList, entry) else { throw ContactsError(.temporary, "out of memory") }
            resolveList = list
        }
        if let resolveList {
            guard sl_curl_set_list(handle, CURLOPT_RESOLVE, resolveList) == CURLE_OK else {
                throw ContactsError(.usage, "libcurl refused the --resolve entries")
            }
        }
        guard sl_curl_set_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer) == CURLE_OK else {
            throw ContactsError(.temporary, "libcurl refused its error buffer")
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
            throw ContactsError(.temporary, "libcurl refused the write function")
        }
        let result = curl_easy_perform(handle)
        if sink.overflow || result == CURLE_FILESIZE_EXCEEDED {
            throw ContactsError(.data, "\(url) answered with more than \(options.maximumSize >> 20) MiB; that is not a key")
        }
        if result == CURLE_COULDNT_RESOLVE_HOST { return .noSuchHost }
        guard result == CURLE_OK else {
            let detail = String(cString: errorBuffer)
            let reason = detail.isEmpty ? String(cString: curl_easy_strerror(result)) : detail
            throw ContactsError(.temporary, "fetching \(url) failed: \(reason)")
        }
        var code = 0
        _ = sl_curl_response_code(handle, &code)
        return code == 200 ? .body(sink.bytes) : .status(code)
    }
}
