#ifndef SL_CZLIB_SHIM_H
#define SL_CZLIB_SHIM_H
// zlib (Debian zlib1g-dev), for the gzip of RFC 8460 TLS reports.
#include <zlib.h>

// deflateInit2 is a macro Swift cannot call.
static inline int sl_deflate_init_gzip(z_stream *s, int level) {
    // windowBits 15 + 16: a gzip wrapper (RFC 1952) instead of zlib's own.
    return deflateInit2(s, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
#endif
