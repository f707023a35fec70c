#ifndef SL_CGPGME_SHIM_H
#define SL_CGPGME_SHIM_H
// GPGME needs large-file offsets on 32-bit hosts; harmless on 64-bit.
#define _FILE_OFFSET_BITS 64
#include <gpgme.h>
#endif
