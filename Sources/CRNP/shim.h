#ifndef SL_CRNP_SHIM_H
#define SL_CRNP_SHIM_H
// librnp (RNP 0.16, Debian librnp-dev): OpenPGP in process, for bulk encryption.
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <rnp/rnp.h>
#endif
