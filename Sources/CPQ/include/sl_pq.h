#ifndef SL_PQ_H
#define SL_PQ_H
// libpq (Debian libpq5), opened with dlopen the first time a run uses a PostgreSQL
// database instead of linked: libpq brings Kerberos, LDAP, SASL and GnuTLS with it,
// and every sl tool would otherwise pay for loading them at each start (most never
// talk to a database; procmail and pipe(8) start one per message). Only the types
// and declarations of libpq-fe.h are used at build time.
#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
// Debian's libpq-dev puts it here, outside the default include path.
#include "/usr/include/postgresql/libpq-fe.h"
#endif

#define SL_PQ_FUNCTIONS(X) \
    X(connectdbParams) X(status) X(errorMessage) X(finish) \
    X(execParams) X(resultStatus) X(resultErrorMessage) X(resultErrorField) \
    X(ntuples) X(nfields) X(getvalue) X(getisnull) X(clear) \
    X(getlength) X(ftype) X(cmdTuples) X(reset)

/// libpq's functions, each with its own type from libpq-fe.h.
struct sl_pq {
#define SL_PQ_FIELD(name) __typeof__(&PQ##name) _Nonnull name;
    SL_PQ_FUNCTIONS(SL_PQ_FIELD)
#undef SL_PQ_FIELD
};

/// Opens libpq and looks up its functions, once per process (thread-safe). NULL
/// when it cannot, with the reason in *error (static text, or dlerror's).
const struct sl_pq *_Nullable sl_pq_load(const char *_Nullable *_Nonnull error);

#endif
