#ifndef SL_CURL_H
#define SL_CURL_H
// libcurl (Debian libcurl4), opened with dlopen the first time a run fetches over
// HTTPS (a WKD key, an MTA-STS policy) instead of linked: libcurl brings HTTP/2,
// SSH, LDAP, RTMP and Kerberos libraries with it, 3 ms at every start of
// sl-classify and sl-deliver, which procmail and pipe(8) start once per message.
// Only the types and declarations of curl/curl.h are used at build time.
#include <stdbool.h>
#include <curl/curl.h>

#define SL_CURL_FUNCTIONS(X) \
    X(global_init) X(easy_init) X(easy_cleanup) X(easy_reset) X(easy_setopt) \
    X(easy_getinfo) X(easy_perform) X(easy_strerror) X(slist_append) X(slist_free_all)

/// libcurl's functions, each with its own type from curl/curl.h.
struct sl_curl_api {
#define SL_CURL_FIELD(name) __typeof__(&curl_##name) name;
    SL_CURL_FUNCTIONS(SL_CURL_FIELD)
#undef SL_CURL_FIELD
};

/// The loaded table; set by a successful sl_curl_load, NULL before.
extern const struct sl_curl_api *sl_curl;

/// Opens libcurl and looks up its functions, once per process (thread-safe), and
/// runs curl_global_init. False when it cannot, with the reason in *error.
bool sl_curl_load(const char **error);

// The calls sl makes, through the table (call only after sl_curl_load succeeded).
// curl_easy_setopt and curl_easy_getinfo are variadic: Swift cannot call them, so
// one typed function per kind of argument.
static inline CURL *sl_curl_easy_init(void) { return sl_curl->easy_init(); }
static inline void sl_curl_easy_cleanup(CURL *c) { sl_curl->easy_cleanup(c); }
static inline void sl_curl_easy_reset(CURL *c) { sl_curl->easy_reset(c); }
static inline CURLcode sl_curl_easy_perform(CURL *c) { return sl_curl->easy_perform(c); }
static inline const char *sl_curl_easy_strerror(CURLcode e) { return sl_curl->easy_strerror(e); }
static inline struct curl_slist *sl_curl_slist_append(struct curl_slist *l, const char *s) { return sl_curl->slist_append(l, s); }
static inline void sl_curl_slist_free_all(struct curl_slist *l) { sl_curl->slist_free_all(l); }
static inline CURLcode sl_curl_set_long(CURL *c, CURLoption o, long v) { return sl_curl->easy_setopt(c, o, v); }
static inline CURLcode sl_curl_set_string(CURL *c, CURLoption o, const char *v) { return sl_curl->easy_setopt(c, o, v); }
static inline CURLcode sl_curl_set_pointer(CURL *c, CURLoption o, void *v) { return sl_curl->easy_setopt(c, o, v); }
static inline CURLcode sl_curl_set_list(CURL *c, CURLoption o, struct curl_slist *v) { return sl_curl->easy_setopt(c, o, v); }
typedef size_t (*sl_curl_write_fn)(char *, size_t, size_t, void *);
static inline CURLcode sl_curl_set_write(CURL *c, sl_curl_write_fn f) { return sl_curl->easy_setopt(c, CURLOPT_WRITEFUNCTION, f); }
static inline CURLcode sl_curl_response_code(CURL *c, long *v) { return sl_curl->easy_getinfo(c, CURLINFO_RESPONSE_CODE, v); }
static inline CURLcode sl_curl_content_type(CURL *c, char **v) { return sl_curl->easy_getinfo(c, CURLINFO_CONTENT_TYPE, v); }
// CURLOPT_SSL_CTX_FUNCTION (OpenSSL backend): called with the SSL_CTX of each
// connection before the handshake, and CURLOPT_SSL_CTX_DATA as `clientp`.
typedef CURLcode (*sl_curl_ssl_ctx_fn)(CURL *, void *ssl_ctx, void *clientp);
static inline CURLcode sl_curl_set_ssl_ctx(CURL *c, sl_curl_ssl_ctx_fn f, void *clientp) {
    CURLcode r = sl_curl->easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, f);
    return r != CURLE_OK ? r : sl_curl->easy_setopt(c, CURLOPT_SSL_CTX_DATA, clientp);
}
#endif
