#ifndef SL_COPENSSL_SHIM_H
#define SL_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/cms.h>
#include <openssl/ssl.h>
#include <openssl/rand.h>

// SSL_* macros that Swift cannot call.
static inline long sl_ssl_set_sni(SSL *s, const char *name) { return SSL_set_tlsext_host_name(s, name); }
static inline long sl_ssl_ctx_set_min_proto(SSL_CTX *c, int version) { return SSL_CTX_set_min_proto_version(c, version); }
// The server's chain as sent (STACK_OF macros are not callable from Swift).
static inline int sl_peer_chain_count(const SSL *s) {
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(s);
    return chain ? sk_X509_num(chain) : 0;
}
static inline X509 *sl_peer_chain_at(const SSL *s, int i) { return sk_X509_value(SSL_get_peer_cert_chain(s), i); }
// DANE (RFC 7671/7672) through OpenSSL's own matching; the flag is a macro.
static inline unsigned long sl_dane_flag_no_ee_namechecks(void) { return DANE_FLAG_NO_DANE_EE_NAMECHECKS; }
static inline unsigned long sl_xn_flag_rfc2253(void) { return XN_FLAG_RFC2253; }
// A STACK_OF(X509) from CMS (signers, certificates).
static inline int sl_x509_stack_count(const STACK_OF(X509) *s) { return s ? sk_X509_num(s) : 0; }
static inline X509 *sl_x509_stack_at(const STACK_OF(X509) *s, int i) { return sk_X509_value(s, i); }
static inline void sl_x509_stack_free(STACK_OF(X509) *s) { sk_X509_free(s); }
static inline void sl_x509_stack_free_all(STACK_OF(X509) *s) { sk_X509_pop_free(s, X509_free); }
#endif
