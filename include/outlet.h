/*
 * outlet.h: the contract between an Outlet host and a `cabi` plugin.
 *
 * A cabi plugin is a shared library, in any language, that exports one
 * function:
 *
 *     const outlet_plugin_table *outlet_plugin_entry(void);
 *
 * It returns a table that lives as long as the library. The host reads
 * `abi_version` and `struct_size` first and refuses a table it does not
 * understand, before calling anything in it.
 *
 * Messages cross the boundary as protobuf bytes: requests are borrowed from
 * the host for the duration of a call; responses are written by the plugin
 * into an `outlet_buf` that the host hands back to `free` once it has read
 * them, on the thread that made the call and before that thread's next call
 * into the plugin (so a plugin may lend one buffer per thread). A function
 * returns 0 (OK) and the encoded response, or a
 * gRPC status code (1..16) and a UTF-8 message in the buffer. No function
 * may unwind or longjmp into the host.
 *
 * Calls may come from several host threads at once.
 */
#ifndef OUTLET_H
#define OUTLET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OUTLET_ABI_VERSION 1

/* The name of the entry symbol. */
#define OUTLET_ENTRY_SYMBOL "outlet_plugin_entry"

/* gRPC status codes used as return values. */
enum outlet_code {
    OUTLET_OK = 0,
    OUTLET_CANCELLED = 1,
    OUTLET_INVALID_ARGUMENT = 3,
    OUTLET_DEADLINE_EXCEEDED = 4,
    OUTLET_NOT_FOUND = 5,
    OUTLET_RESOURCE_EXHAUSTED = 8,
    OUTLET_FAILED_PRECONDITION = 9,
    OUTLET_UNIMPLEMENTED = 12,
    OUTLET_INTERNAL = 13,
    OUTLET_UNAVAILABLE = 14,
};

/* Log levels for outlet_host_table.log. */
enum outlet_level {
    OUTLET_TRACE = 0,
    OUTLET_DEBUG = 1,
    OUTLET_INFO = 2,
    OUTLET_WARN = 3,
    OUTLET_ERROR = 4,
};

/* Bytes written by the plugin, released by the plugin's `free`. */
typedef struct outlet_buf {
    uint8_t *ptr;
    size_t len;
} outlet_buf;

/* What the host offers the plugin. Valid until `shutdown` returns. */
typedef struct outlet_host_table {
    uint32_t abi_version;
    uint32_t struct_size; /* sizeof(outlet_host_table) as the host built it */
    void *host;           /* opaque: pass it back to the functions below */
    /* A log line, UTF-8, not NUL-terminated. */
    void (*log)(void *host, int32_t level, const uint8_t *message, size_t len);
    /* A call into the host (its services, or other plugins through it).
     * Returns a code like the plugin's functions; on return `*response`
     * holds the host's bytes, valid until `free_response` is called. */
    int32_t (*call)(void *host, const uint8_t *method, size_t method_len,
                    const uint8_t *request, size_t request_len, outlet_buf *response);
    void (*free_response)(void *host, outlet_buf response);
    /* Asked during a call, on the thread the host called on: the time left
     * to it in microseconds (-1: no deadline), and whether its caller
     * cancelled it (1) or not (0). A plugin that may run long asks now and
     * then, and returns OUTLET_DEADLINE_EXCEEDED or OUTLET_CANCELLED.
     * Present when struct_size reaches them (hosts since these fields). */
    int64_t (*time_left)(void *host);
    int32_t (*cancelled)(void *host);
    /* The call's W3C trace context: which = 0 its traceparent, 1 its
     * tracestate. Copies at most `cap` bytes to `buf` (no NUL) and returns
     * the value's length; 0 if it has none. */
    size_t (*trace)(void *host, int32_t which, uint8_t *buf, size_t cap);
    /* A stream's next request, pulled by the plugin during its `open` and
     * `next` of that stream, passing back the `requests` that `open` was
     * given: 0 with the request in `*request` (the host's bytes, valid until
     * the stream's next `next_request` or its `close`; not freed by the
     * plugin), -1 once there are none, or a code and a message. Present when
     * struct_size reaches it. */
    int32_t (*next_request)(void *host, void *requests, outlet_buf *request);
} outlet_host_table;

/* What the plugin offers the host. */
typedef struct outlet_plugin_table {
    uint32_t abi_version; /* OUTLET_ABI_VERSION */
    uint32_t struct_size; /* sizeof(outlet_plugin_table) */
    const char *name;     /* NUL-terminated, static */
    const char *version;  /* NUL-terminated, static */
    /* The first call. `host` stays valid until `shutdown` returns.
     * `request` is an encoded outlet.core.v1.HelloRequest; on OK the
     * response is an encoded outlet.core.v1.HelloResponse. */
    int32_t (*hello)(const outlet_host_table *host, const uint8_t *request, size_t request_len,
                     outlet_buf *response);
    /* One call of the plugin's interface: `method` is the gRPC path,
     * "/package.Service/Method", not NUL-terminated. */
    int32_t (*call)(const uint8_t *method, size_t method_len, const uint8_t *request,
                    size_t request_len, outlet_buf *response);
    /* Releases a buffer this plugin wrote. */
    void (*free)(outlet_buf buffer);
    /* An encoded outlet.core.v1.ConfigureRequest; on OK, an empty response. */
    int32_t (*configure)(const uint8_t *request, size_t request_len, outlet_buf *response);
    /* The last call: release everything. */
    void (*shutdown)(void);
    /* Streams: a plugin with none leaves these NULL (a table whose
     * struct_size ends before them has none either).
     * `open` opens a stream of `method`, whose requests the plugin pulls
     * with the host table's `next_request`, passing `requests`; it returns
     * 0 with `*stream` set, or a code with a message in `*response`.
     * `next` makes the stream's next response: 0 with it in `*response`,
     * -1 once the stream has ended, or a code with a message (the stream is
     * then over); the host frees `*response` with `free` in every case.
     * `close` releases the stream, ended or not, and is the last call about
     * it. A stream is used by one host thread at a time, not always the
     * same one. */
    int32_t (*open)(const uint8_t *method, size_t method_len, void *requests, void **stream,
                    outlet_buf *response);
    int32_t (*next)(void *stream, outlet_buf *response);
    void (*close)(void *stream);
} outlet_plugin_table;

/* The one symbol a cabi plugin exports. */
const outlet_plugin_table *outlet_plugin_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* OUTLET_H */
