/*
 * Something that looks like a native plugin from another build: the
 * declaration's C header with a foreign build fingerprint.
 *   ABI=n    another declaration version
 *   SIZE=n   another declaration size
 */
#include <stddef.h>
#include <stdint.h>

#ifndef ABI
#define ABI 7
#endif
#ifndef SIZE
#define SIZE 40
#endif

struct declaration {
    uint32_t abi_version;
    uint32_t size;
    const char *build;
    size_t build_len;
    void *make;
    void *connect;
};

static const char build[] = "rustc 1.0.0 (elsewhere); outlet 0.0.1; x86_64-unknown-linux-gnu";

const struct declaration OUTLET_NATIVE_PLUGIN = {ABI, SIZE, build, sizeof build - 1, 0, 0};
