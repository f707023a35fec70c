#ifndef SL_CCURL_SHIM_H
#define SL_CCURL_SHIM_H
#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are variadic: Swift cannot call them, so
// one typed function per kind of argument.
static inline CURLcode sl_curl_set_long(CURL *c, CURLoption o, long v) { return curl_easy_setopt(c, o, v); }
static inline CURLcode sl_curl_set_string(CURL *c, CURLoption o, const char *v) { return curl_easy_setopt(c, o, v); }
static inline CURLcode sl_curl_set_pointer(CURL *c, CURLoption o, void *v) { return curl_easy_setopt(c, o, v); }
static inline CURLcode sl_curl_set_list(CURL *c, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(c, o, v); }
typedef size_t (*sl_curl_write_fn)(char *, size_t, size_t, void *);
static inline CURLcode sl_curl_set_write(CURL *c, sl_curl_write_fn f) { return curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, f); }
static inline CURLcode sl_curl_response_code(CURL *c, long *v) { return curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, v); }
static inline CURLcode sl_curl_content_type(CURL *c, char **v) { return curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, v); }
// CURLOPT_SSL_CTX_FUNCTION (OpenSSL backend): called with the SSL_CTX of each
// connection before the handshake, and CURLOPT_SSL_CTX_DATA as `clientp`.
typedef CURLcode (*sl_curl_ssl_ctx_fn)(CURL *, void *ssl_ctx, void *clientp);
static inline CURLcode sl_curl_set_ssl_ctx(CURL *c, sl_curl_ssl_ctx_fn f, void *clientp) {
    CURLcode r = curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, f);
    return r != CURLE_OK ? r : curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, clientp);
}
#endif
