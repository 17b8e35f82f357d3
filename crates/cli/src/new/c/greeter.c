/*
 * {{name}}: a greeter, as an Outlet cabi plugin written in C. Greet answers
 * "<greeting>, <name>!", where the greeting is "Hello" unless the
 * manifest's config key "greeting" says otherwise.
 *
 * The host loads this shared library into its own process and calls it
 * through the function table at the end of this file (see outlet.h).
 * Messages are protobuf bytes, read and written by hand with protobuf.h:
 * the messages of {{proto}} are small.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "outlet.h"
#include "protobuf.h"

#define PLUGIN "{{name}}"
#define VERSION "0.1.0"
#define SERVICE "{{service}}"
#define GREET_PATH "/" SERVICE "/Greet"

/* The host's table, from Hello: its log, and calls into the host. */
static const outlet_host_table *host;
/* The greeting, replaced by Configure while calls may be running. */
static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static char greeting[64] = "Hello";

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

/* One call of the service: `method` is its gRPC path (not NUL-terminated). */
static int32_t call(const uint8_t *method, size_t method_len, const uint8_t *request,
                    size_t request_len, outlet_buf *out) {
    if (method_len != strlen(GREET_PATH) || memcmp(method, GREET_PATH, method_len) != 0)
        return fail(OUTLET_UNIMPLEMENTED, PLUGIN " serves only " GREET_PATH, out);
    /* GreetRequest { string name = 1; } */
    reader r = {request, request + request_len}, name = {0}, data;
    uint32_t field;
    uint64_t value;
    while (r.p < r.end) {
        if (!next_field(&r, &field, &value, &data))
            return fail(OUTLET_INVALID_ARGUMENT, "the GreetRequest does not decode", out);
        if (field == 1 && data.p) name = data;
    }
    /* GreetResponse { string message = 1; } */
    writer text = {0}, w = {0};
    pthread_rwlock_rdlock(&lock);
    int ok = put(&text, greeting, strlen(greeting));
    pthread_rwlock_unlock(&lock);
    ok = ok && put(&text, ", ", 2) && put(&text, name.p, (size_t)(name.end - name.p)) &&
         put(&text, "!", 1) && put_field(&w, 1, text.ptr, text.len);
    free(text.ptr);
    return finish(&w, ok, out);
}

/* The manifest's [config], as a ConfigureRequest { map<string, string>
 * config = 1; }: each entry a message with key = 1 and value = 2. */
static int32_t configure(const uint8_t *request, size_t request_len, outlet_buf *out) {
    reader r = {request, request + request_len}, entry, data;
    uint32_t field;
    uint64_t value;
    char next[sizeof greeting] = "Hello";
    while (r.p < r.end) {
        if (!next_field(&r, &field, &value, &entry))
            return fail(OUTLET_INVALID_ARGUMENT, "the ConfigureRequest does not decode", out);
        if (field != 1 || !entry.p) continue;
        reader key = {0}, val = {0};
        while (entry.p < entry.end) {
            if (!next_field(&entry, &field, &value, &data))
                return fail(OUTLET_INVALID_ARGUMENT, "a config entry does not decode", out);
            if (field == 1) key = data;
            if (field == 2) val = data;
        }
        size_t klen = (size_t)(key.end - key.p), vlen = (size_t)(val.end - val.p);
        if (klen == 8 && memcmp(key.p, "greeting", 8) == 0) {
            if (vlen == 0 || vlen >= sizeof next)
                return fail(OUTLET_INVALID_ARGUMENT,
                            "config key `greeting` must be 1 to 63 bytes", out);
            memcpy(next, val.p, vlen);
            next[vlen] = 0;
        }
    }
    pthread_rwlock_wrlock(&lock);
    memcpy(greeting, next, sizeof greeting);
    pthread_rwlock_unlock(&lock);
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
};

/* The one symbol the host looks up. */
const outlet_plugin_table *outlet_plugin_entry(void) { return &table; }
