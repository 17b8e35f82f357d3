/*
 * protobuf.h: just enough protobuf to read requests and write answers by
 * hand, for small messages. Fields are read one at a time with next_field;
 * answers are built in a writer and handed to the host with finish or fail.
 */
#ifndef PLUGIN_PROTOBUF_H
#define PLUGIN_PROTOBUF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "outlet.h"

/* A growable byte buffer, handed to the host as an outlet_buf. */
typedef struct {
    uint8_t *ptr;
    size_t len, cap;
} writer;

/* Appends bytes; 0 if memory ran out. */
static inline int put(writer *w, const void *bytes, size_t len) {
    if (len == 0) return 1;
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

static inline int put_varint(writer *w, uint64_t v) {
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

/* A varint field: an integer, a bool or an enum. */
static inline int put_uint(writer *w, uint32_t field, uint64_t v) {
    return put_varint(w, (uint64_t)field << 3) && put_varint(w, v);
}

/* A length-delimited field: a string, bytes, a message or packed varints. */
static inline int put_field(writer *w, uint32_t field, const void *bytes, size_t len) {
    return put_varint(w, ((uint64_t)field << 3) | 2) && put_varint(w, len) && put(w, bytes, len);
}

static inline int put_str(writer *w, uint32_t field, const char *s) {
    return put_field(w, field, s, strlen(s));
}

/* Hands the writer's bytes to the host as the answer (`ok`: every put
 * succeeded); the host gives them back to the plugin's `free`. */
static inline int32_t finish(writer *w, int ok, outlet_buf *out) {
    if (!ok) {
        free(w->ptr);
        out->ptr = NULL;
        out->len = 0;
        return OUTLET_RESOURCE_EXHAUSTED;
    }
    out->ptr = w->ptr;
    out->len = w->len;
    return OUTLET_OK;
}

/* Fails the call with a gRPC status code and a message. */
static inline int32_t fail(int32_t code, const char *message, outlet_buf *out) {
    writer w = {0};
    int32_t done = finish(&w, put(&w, message, strlen(message)), out);
    return done == OUTLET_OK ? code : done;
}

/* A reader over a protobuf message. */
typedef struct {
    const uint8_t *p, *end;
} reader;

static inline int get_varint(reader *r, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return 1;
    }
    return 0;
}

/* Reads the next field: its number in *field; a varint's value, or a
 * length-delimited field's length, in *value; a length-delimited field's
 * bytes in *data (else data->p is NULL). 0 if the message does not decode. */
static inline int next_field(reader *r, uint32_t *field, uint64_t *value, reader *data) {
    uint64_t key;
    if (r->p >= r->end || !get_varint(r, &key)) return 0;
    *field = (uint32_t)(key >> 3);
    *value = 0;
    data->p = data->end = NULL;
    switch (key & 7) {
    case 0: return get_varint(r, value);
    case 1: if (r->end - r->p < 8) return 0; r->p += 8; return 1;
    case 5: if (r->end - r->p < 4) return 0; r->p += 4; return 1;
    case 2:
        if (!get_varint(r, value) || *value > (uint64_t)(r->end - r->p)) return 0;
        data->p = r->p;
        data->end = r->p + *value;
        r->p += *value;
        return 1;
    default: return 0;
    }
}

#endif /* PLUGIN_PROTOBUF_H */
