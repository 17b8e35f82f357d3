/*
 * cabi plugins that break the contract of outlet.h, one way per macro:
 * the integration tests build each with the system C compiler.
 *
 *   NO_ENTRY        exports no entry symbol
 *   NULL_TABLE      the entry returns NULL
 *   ABI_VERSION=n   a table of another ABI version
 *   SMALL_TABLE     a table shorter than ABI version 1's
 *   NO_CONFIGURE    a table without `configure`
 *   NULL_ANSWER     answers calls with a null pointer and a length
 *   HUGE_ANSWER     answers calls with 1 MiB
 *   NULL_MAX_ANSWER answers calls with a null pointer and a length of SIZE_MAX
 *   MAX_ANSWER      answers calls with 1 byte and a length of SIZE_MAX
 *   OLD_TABLE       a table of before streams: it ends before `open`
 *   HALF_STREAMS    `open`, but no `next` or `close`
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "outlet.h"

#ifndef ABI_VERSION
#define ABI_VERSION OUTLET_ABI_VERSION
#endif

static int32_t hello(const outlet_host_table *host, const uint8_t *req, size_t len,
                     outlet_buf *out) {
    (void)host; (void)req; (void)len;
    /* HelloResponse: name "bad", core_versions [1], app_versions [1], services. */
    static const char svc[] = "outlet.examples.greeter.v1.Greeter";
    size_t n = 0;
    uint8_t *b = malloc(64);
    b[n++] = 0x0a; b[n++] = 3; memcpy(b + n, "bad", 3); n += 3;
    b[n++] = 0x1a; b[n++] = 1; b[n++] = 1;
    b[n++] = 0x22; b[n++] = 1; b[n++] = 1;
    b[n++] = 0x32; b[n++] = sizeof svc - 1; memcpy(b + n, svc, sizeof svc - 1); n += sizeof svc - 1;
    out->ptr = b;
    out->len = n;
    return OUTLET_OK;
}

static int32_t call(const uint8_t *m, size_t ml, const uint8_t *req, size_t len, outlet_buf *out) {
    (void)m; (void)ml; (void)req; (void)len;
#if defined(NULL_ANSWER)
    out->ptr = NULL;
    out->len = 12;
#elif defined(HUGE_ANSWER)
    out->len = 1 << 20;
    out->ptr = calloc(1, out->len);
#elif defined(NULL_MAX_ANSWER)
    out->ptr = NULL;
    out->len = SIZE_MAX;
#elif defined(MAX_ANSWER)
    out->ptr = calloc(1, 1);
    out->len = SIZE_MAX;
#else
    out->ptr = NULL;
    out->len = 0;
#endif
    return OUTLET_OK;
}

static void release(outlet_buf b) { free(b.ptr); }
static int32_t configure(const uint8_t *r, size_t l, outlet_buf *o) {
    (void)r; (void)l; o->ptr = NULL; o->len = 0; return OUTLET_OK;
}
static void shutdown(void) {}
#ifdef HALF_STREAMS
static int32_t open_stream(const uint8_t *m, size_t ml, void *requests, void **stream,
                           outlet_buf *o) {
    (void)m; (void)ml; (void)requests; (void)stream; o->ptr = NULL; o->len = 0;
    return OUTLET_UNIMPLEMENTED;
}
#endif

static const outlet_plugin_table table = {
    .abi_version = ABI_VERSION,
#if defined(SMALL_TABLE)
    .struct_size = 16,
#elif defined(OLD_TABLE)
    .struct_size = offsetof(outlet_plugin_table, open),
#else
    .struct_size = sizeof(outlet_plugin_table),
#endif
    .name = "bad",
    .version = "0",
    .hello = hello,
    .call = call,
    .free = release,
#ifndef NO_CONFIGURE
    .configure = configure,
#endif
    .shutdown = shutdown,
#ifdef HALF_STREAMS
    .open = open_stream,
#endif
};

#ifndef NO_ENTRY
const outlet_plugin_table *outlet_plugin_entry(void) {
#ifdef NULL_TABLE
    return NULL;
#else
    return &table;
#endif
}
#endif
