#include "sl_curl.h"
#include <dlfcn.h>
#include <pthread.h>

static struct sl_curl_api table;
const struct sl_curl_api *sl_curl;
static const char *failure;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
    // The soname Debian's libcurl4 installs (OpenSSL flavour, which the SSL_CTX
    // callback needs); every function sl calls is looked up here.
    void *library = dlopen("libcurl.so.4", RTLD_LAZY | RTLD_LOCAL);
    if (!library) {
        failure = dlerror();
        return;
    }
#define SL_CURL_LOOKUP(name)                                          \
    table.name = (__typeof__(table.name))dlsym(library, "curl_" #name); \
    if (!table.name) {                                                \
        failure = "libcurl lacks curl_" #name;                        \
        return;                                                       \
    }
    SL_CURL_FUNCTIONS(SL_CURL_LOOKUP)
#undef SL_CURL_LOOKUP
    if (table.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        failure = "curl_global_init failed";
        return;
    }
    sl_curl = &table;
}

bool sl_curl_load(const char **error) {
    pthread_once(&once, load);
    if (!sl_curl) *error = failure ? failure : "libcurl could not be loaded";
    return sl_curl != NULL;
}
