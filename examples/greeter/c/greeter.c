/*
 * The greeter as a cabi plugin written in C: "<greeting>, <name>!", where
 * the greeting is "Hello" unless config key "greeting" says otherwise.
 *
 * Build: cc -shared -fPIC -O2 -I include examples/greeter/c/greeter.c -o libgreeter_c.so
 *
 * Protobuf is encoded and decoded by hand: the messages are small.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "outlet.h"

#define GREET_PATH "/outlet.examples.greeter.v1.Greeter/Greet"
#define SERVICE "outlet.examples.greeter.v1.Greeter"

static const outlet_host_table *host;
static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static char greeting[64] = "Hello";

/* A growable byte buffer, handed to the host as an outlet_buf. */
typedef struct {
    uint8_t *ptr;
    size_t len, cap;
} writer;

static int put(writer *w, const void *bytes, size_t len) {
    if (w->len + len > w->cap) {
        size_t cap = (w->cap ? w->cap * 2 : 64) + len;
        uint8_t *ptr = realloc(w->ptr, cap);
        if (!ptr) return 0;
        w->ptr = ptr;
        w->cap = cap;
    }
    memcpy(w->ptr + w->len, bytes, len);
    w->len += len;
    return 1;
}

static int put_varint(writer *w, uint64_t v) {
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) b[n] |= 0x80;
        n++;
    } while (v);
    return put(w, b, n);
}

/* A length-delimited field: a string, bytes or packed varints. */
static int put_field(writer *w, uint32_t field, const void *bytes, size_t len) {
    return put_varint(w, (field << 3) | 2) && put_varint(w, len) && put(w, bytes, len);
}

static int put_str(writer *w, uint32_t field, const char *s) {
    return put_field(w, field, s, strlen(s));
}

static int32_t finish(writer *w, int ok, outlet_buf *out) {
    if (!ok) {
        free(w->ptr);
        return OUTLET_RESOURCE_EXHAUSTED;
    }
    out->ptr = w->ptr;
    out->len = w->len;
    return OUTLET_OK;
}

static int32_t fail(int32_t code, const char *message, outlet_buf *out) {
    writer w = {0};
    finish(&w, put(&w, message, strlen(message)), out);
    return code;
}

/* A reader over a protobuf message. */
typedef struct {
    const uint8_t *p, *end;
} reader;

static int get_varint(reader *r, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return 1;
    }
    return 0;
}

/* Reads the next field; length-delimited ones come back in *data. */
static int next_field(reader *r, uint32_t *field, reader *data) {
    uint64_t key, v;
    if (r->p >= r->end || !get_varint(r, &key)) return 0;
    *field = (uint32_t)(key >> 3);
    data->p = data->end = NULL;
    switch (key & 7) {
    case 0: return get_varint(r, &v);
    case 1: if (r->end - r->p < 8) return 0; r->p += 8; return 1;
    case 5: if (r->end - r->p < 4) return 0; r->p += 4; return 1;
    case 2:
        if (!get_varint(r, &v) || v > (uint64_t)(r->end - r->p)) return 0;
        data->p = r->p;
        data->end = r->p + v;
        r->p += v;
        return 1;
    default: return 0;
    }
}

static int32_t hello(const outlet_host_table *h, const uint8_t *request, size_t request_len,
                     outlet_buf *out) {
    (void)request;
    (void)request_len;
    if (!h || h->abi_version != OUTLET_ABI_VERSION || h->struct_size < sizeof(outlet_host_table))
        return fail(OUTLET_FAILED_PRECONDITION, "greeter-c needs outlet ABI version 1", out);
    host = h;
    static const char ready[] = "greeter-c ready";
    host->log(host->host, OUTLET_INFO, (const uint8_t *)ready, sizeof ready - 1);
    writer w = {0};
    uint8_t one = 1;
    int ok = put_str(&w, 1, "greeter-c") && put_str(&w, 2, "1.0.0") &&
             put_field(&w, 3, &one, 1) && put_field(&w, 4, &one, 1) &&
             put_str(&w, 5, "configure") && put_str(&w, 6, SERVICE);
    return finish(&w, ok, out);
}

static int32_t call(const uint8_t *method, size_t method_len, const uint8_t *request,
                    size_t request_len, outlet_buf *out) {
    if (method_len != strlen(GREET_PATH) || memcmp(method, GREET_PATH, method_len) != 0)
        return fail(OUTLET_UNIMPLEMENTED, "greeter-c serves only " GREET_PATH, out);
    reader r = {request, request + request_len}, name = {0}, data;
    uint32_t field;
    while (r.p < r.end) {
        if (!next_field(&r, &field, &data))
            return fail(OUTLET_INVALID_ARGUMENT, "the GreetRequest does not decode", out);
        if (field == 1 && data.p) name = data;
    }
    writer text = {0}, w = {0};
    pthread_rwlock_rdlock(&lock);
    int ok = put(&text, greeting, strlen(greeting));
    pthread_rwlock_unlock(&lock);
    ok = ok && put(&text, ", ", 2) && put(&text, name.p, (size_t)(name.end - name.p)) &&
         put(&text, "!", 1) && put_field(&w, 1, text.ptr, text.len);
    free(text.ptr);
    return finish(&w, ok, out);
}

static int32_t configure(const uint8_t *request, size_t request_len, outlet_buf *out) {
    reader r = {request, request + request_len}, entry, data;
    uint32_t field;
    char next[sizeof greeting] = "Hello";
    while (r.p < r.end) {
        if (!next_field(&r, &field, &entry))
            return fail(OUTLET_INVALID_ARGUMENT, "the ConfigureRequest does not decode", out);
        if (field != 1 || !entry.p) continue;
        reader key = {0}, value = {0};
        while (entry.p < entry.end) {
            if (!next_field(&entry, &field, &data))
                return fail(OUTLET_INVALID_ARGUMENT, "a config entry does not decode", out);
            if (field == 1) key = data;
            if (field == 2) value = data;
        }
        size_t klen = (size_t)(key.end - key.p), vlen = (size_t)(value.end - value.p);
        if (klen == 8 && memcmp(key.p, "greeting", 8) == 0) {
            if (vlen == 0 || vlen >= sizeof next)
                return fail(OUTLET_INVALID_ARGUMENT,
                            "config key `greeting` must be 1 to 63 bytes", out);
            memcpy(next, value.p, vlen);
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

static void release(outlet_buf buffer) { free(buffer.ptr); }

static void shutdown(void) { host = NULL; }

static const outlet_plugin_table table = {
    .abi_version = OUTLET_ABI_VERSION,
    .struct_size = sizeof(outlet_plugin_table),
    .name = "greeter-c",
    .version = "1.0.0",
    .hello = hello,
    .call = call,
    .free = release,
    .configure = configure,
    .shutdown = shutdown,
};

const outlet_plugin_table *outlet_plugin_entry(void) { return &table; }
