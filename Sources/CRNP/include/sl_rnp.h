#ifndef SL_RNP_H
#define SL_RNP_H
// librnp (RNP 0.16, Debian librnp0), opened with dlopen the first time a run needs
// it instead of linked: librnp pulls in Botan, whose start-up costs 4-5 ms of every
// process that links it, and most messages through sl-encrypt-pgp are not for PGP.
// Only the types and declarations of rnp.h are used at build time; every call goes
// through the table below, which sl_rnp_load fills once per process.
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <rnp/rnp.h>

#define SL_RNP_FUNCTIONS(X) \
    X(result_to_string) X(buffer_destroy) \
    X(ffi_create) X(ffi_destroy) X(import_keys) X(locate_key) \
    X(input_from_memory) X(input_from_callback) X(input_destroy) \
    X(output_to_callback) X(output_finish) X(output_destroy) \
    X(key_handle_destroy) X(key_get_fprint) X(key_get_default_key) \
    X(key_is_valid) X(key_is_revoked) X(key_is_expired) \
    X(key_get_uid_count) X(key_get_uid_at) X(key_get_uid_handle_at) \
    X(uid_is_revoked) X(uid_is_valid) X(uid_handle_destroy) \
    X(op_encrypt_create) X(op_encrypt_add_recipient) X(op_encrypt_set_armor) \
    X(op_encrypt_set_cipher) X(op_encrypt_set_aead) X(op_encrypt_set_compression) \
    X(op_encrypt_set_file_name) X(op_encrypt_set_file_mtime) X(op_encrypt_execute) \
    X(op_encrypt_destroy)

/// librnp's functions, each with its own type from rnp.h.
struct sl_rnp {
#define SL_RNP_FIELD(name) __typeof__(&rnp_##name) _Nonnull name;
    SL_RNP_FUNCTIONS(SL_RNP_FIELD)
#undef SL_RNP_FIELD
};

/// Opens librnp and looks up its functions, once per process (thread-safe). NULL
/// when it cannot, with the reason in *error (static text, or dlerror's).
const struct sl_rnp *_Nullable sl_rnp_load(const char *_Nullable *_Nonnull error);

#endif
