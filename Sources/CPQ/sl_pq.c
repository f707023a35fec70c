#include "sl_pq.h"
#include <dlfcn.h>
#include <pthread.h>

static struct sl_pq table;
static const struct sl_pq *loaded;
static const char *failure;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
    // The soname Debian's libpq5 installs; every function sl calls is looked up
    // here, so a missing one is reported before any statement runs.
    void *library = dlopen("libpq.so.5", RTLD_LAZY | RTLD_LOCAL);
    if (!library) {
        failure = dlerror();
        return;
    }
#define SL_PQ_LOOKUP(name)                                        \
    table.name = (__typeof__(table.name))dlsym(library, "PQ" #name); \
    if (!table.name) {                                            \
        failure = "libpq lacks PQ" #name;                         \
        return;                                                   \
    }
    SL_PQ_FUNCTIONS(SL_PQ_LOOKUP)
#undef SL_PQ_LOOKUP
    loaded = &table;
}

const struct sl_pq *sl_pq_load(const char **error) {
    pthread_once(&once, load);
    if (!loaded) *error = failure ? failure : "libpq could not be loaded";
    return loaded;
}
