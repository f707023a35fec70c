#include "sl_rnp.h"
#include <dlfcn.h>
#include <pthread.h>

static struct sl_rnp table;
static const struct sl_rnp *loaded;
static const char *failure;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
    // The soname Debian's librnp0 installs. Every function sl calls is looked up
    // below, so a missing one fails here, with a message, and not in the middle of
    // a message; RTLD_LAZY leaves Botan's thousands of other functions unbound
    // until used (0.4 ms of every run that encrypts, measured against RTLD_NOW).
    void *library = dlopen("librnp.so.0", RTLD_LAZY | RTLD_LOCAL);
    if (!library) {
        failure = dlerror();
        return;
    }
#define SL_RNP_LOOKUP(name)                                       \
    table.name = (__typeof__(table.name))dlsym(library, "rnp_" #name); \
    if (!table.name) {                                           \
        failure = "librnp lacks rnp_" #name;                     \
        return;                                                  \
    }
    SL_RNP_FUNCTIONS(SL_RNP_LOOKUP)
#undef SL_RNP_LOOKUP
    loaded = &table;
}

const struct sl_rnp *sl_rnp_load(const char **error) {
    pthread_once(&once, load);
    if (!loaded) *error = failure ? failure : "librnp could not be loaded";
    return loaded;
}
