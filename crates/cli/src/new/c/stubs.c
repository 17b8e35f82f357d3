/*
 * {{name}}: an Outlet cabi plugin written in C, serving {{service}}.
 * Every method answers Unimplemented until you write it: look for TODO.
 *
 * The host loads this shared library into its own process and calls it
 * through the function table at the end of this file (see outlet.h).
 * Messages are protobuf bytes, as {{proto}} declares them: read requests
 * and write answers with protobuf.h, or with a C protobuf library.
 */
#include <stdlib.h>
#include <string.h>

#include "outlet.h"
#include "protobuf.h"

#define PLUGIN "{{name}}"
#define VERSION "0.1.0"
#define SERVICE "{{service}}"

/* The host's table, from Hello: its log, and calls into the host. */
static const outlet_host_table *host;

/* Whether `method` (a gRPC path, not NUL-terminated) is `path`. */
static inline int is(const uint8_t *method, size_t method_len, const char *path) {
    return method_len == strlen(path) && memcmp(method, path, method_len) == 0;
}

/* The first call: who this plugin is and what it serves (a HelloResponse). */
static int32_t hello(const outlet_host_table *h, const uint8_t *request, size_t request_len,
                     outlet_buf *out) {
    (void)request;
    (void)request_len;
    if (!h || h->abi_version != OUTLET_ABI_VERSION || h->struct_size < sizeof(outlet_host_table))
        return fail(OUTLET_FAILED_PRECONDITION, PLUGIN " needs outlet ABI version 1", out);
    host = h;
    static const char ready[] = PLUGIN " ready";
    host->log(host->host, OUTLET_INFO, (const uint8_t *)ready, sizeof ready - 1);
    writer w = {0};
    uint8_t one = 1;
    /* name, version, core_versions [1], app_versions [1] (the manifest's
     * `versions`), capabilities ["configure"], services. */
    int ok = put_str(&w, 1, PLUGIN) && put_str(&w, 2, VERSION) && put_field(&w, 3, &one, 1) &&
             put_field(&w, 4, &one, 1) && put_str(&w, 5, "configure") && put_str(&w, 6, SERVICE);
    return finish(&w, ok, out);
}

/* One call of a method whose request and response are single messages:
 * `method` is its gRPC path, `request` the encoded request. Answer with
 * finish (the encoded response) or fail (a status code and a message). */
static int32_t call(const uint8_t *method, size_t method_len, const uint8_t *request,
                    size_t request_len, outlet_buf *out) {
    (void)request;
    (void)request_len;
{{calls}}    return fail(OUTLET_UNIMPLEMENTED, PLUGIN " has no such method", out);
}
{{streams}}
/* The manifest's [config], as a ConfigureRequest { map<string, string>
 * config = 1; }: each entry a message with key = 1 and value = 2. */
static int32_t configure(const uint8_t *request, size_t request_len, outlet_buf *out) {
    (void)request;
    (void)request_len;
    /* TODO: read the config keys your plugin takes (next_field, as the
     * entries nest), and refuse a bad value with
     * fail(OUTLET_INVALID_ARGUMENT, "...", out). */
    out->ptr = NULL;
    out->len = 0;
    return OUTLET_OK;
}

/* Releases an answer this plugin wrote, once the host has read it. */
static void release(outlet_buf buffer) { free(buffer.ptr); }

/* The last call: the host's table is no longer valid after it. */
static void stop(void) { host = NULL; }

static const outlet_plugin_table table = {
    .abi_version = OUTLET_ABI_VERSION,
    .struct_size = sizeof(outlet_plugin_table),
    .name = PLUGIN,
    .version = VERSION,
    .hello = hello,
    .call = call,
    .free = release,
    .configure = configure,
    .shutdown = stop,
{{stream_table}}};

/* The one symbol the host looks up. */
const outlet_plugin_table *outlet_plugin_entry(void) { return &table; }
