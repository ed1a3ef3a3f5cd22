#include "ext_codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base64.h"
#include "common/macro.h"
#include "json_bigstr.h"
#include "json_enc.h"
#include "msg-internal.h"
#include "vsock/error.h"

#define DECODE_ERR VSOCK_ERR(VSOCK_E_DECODE, EINVAL)

#define MEMBER(st, off, T) ((T *) ((uint8_t *) (st) + (off)))
#define CMEMBER(st, off, T) ((const T *) ((const uint8_t *) (st) + (off)))

/* ---- defaults and release -------------------------------------------------------- */

static void set_scalar(const struct ext_field *f, void *st, int64_t v) {
        switch (f->kind) {
        case EK_BOOL:
                *MEMBER(st, f->off, bool) = v != 0;
                break;
        case EK_I32:
                *MEMBER(st, f->off, int32_t) = (int32_t) v;
                break;
        case EK_I64:
                *MEMBER(st, f->off, int64_t) = v;
                break;
        case EK_U16:
                *MEMBER(st, f->off, uint16_t) = (uint16_t) v;
                break;
        case EK_U32:
                *MEMBER(st, f->off, uint32_t) = (uint32_t) v;
                break;
        case EK_U64:
                *MEMBER(st, f->off, uint64_t) = (uint64_t) v;
                break;
        }
}

/* A scalar as int64 (U64 and U32 keep their bit patterns within int64,
 * which is all a comparison with the default needs). */
static int64_t get_scalar(const struct ext_field *f, const void *st) {
        switch (f->kind) {
        case EK_BOOL:
                return *CMEMBER(st, f->off, bool);
        case EK_I32:
                return *CMEMBER(st, f->off, int32_t);
        case EK_I64:
                return *CMEMBER(st, f->off, int64_t);
        case EK_U16:
                return *CMEMBER(st, f->off, uint16_t);
        case EK_U32:
                return *CMEMBER(st, f->off, uint32_t);
        case EK_U64:
                return (int64_t) *CMEMBER(st, f->off, uint64_t);
        }
        return 0;
}

static bool is_scalar(const struct ext_field *f) {
        return f->kind >= EK_BOOL && f->kind <= EK_U64;
}

void ext_init(const struct ext_shape *shape, void *msg) {
        memset(msg, 0, shape->size);
        for (size_t i = 0; i < shape->n_fields; i++) {
                const struct ext_field *f = &shape->fields[i];
                if (is_scalar(f))
                        set_scalar(f, msg, f->dflt);
                else if (f->kind == EK_OBJ)
                        ext_init(f->sub, MEMBER(msg, f->off, void));
        }
}

static void clear_objv(const struct ext_field *f, void *st) {
        uint8_t **pv = MEMBER(st, f->off, uint8_t *);
        size_t *pn = MEMBER(st, f->aux, size_t);
        for (size_t i = 0; *pv && i < *pn; i++)
                ext_clear(f->sub, *pv + i * f->sub->size);
        free(*pv);
        *pv = NULL;
        *pn = 0;
}

void ext_clear(const struct ext_shape *shape, void *msg) {
        if (!msg)
                return;
        for (size_t i = 0; i < shape->n_fields; i++) {
                const struct ext_field *f = &shape->fields[i];
                switch (f->kind) {
                case EK_STR:
                case EK_OSTR:
                        free(*MEMBER(msg, f->off, char *));
                        break;
                case EK_STRV:
                        msg_strv_free(*MEMBER(msg, f->off, char **), *MEMBER(msg, f->aux, size_t));
                        break;
                case EK_ENV:
                        msg_env_free(*MEMBER(msg, f->off, struct vsock_env *), *MEMBER(msg, f->aux, size_t), true);
                        break;
                case EK_BYTES:
                        msg_bytes_free(MEMBER(msg, f->off, struct vsock_bytes), true);
                        break;
                case EK_OBJ:
                        ext_clear(f->sub, MEMBER(msg, f->off, void));
                        break;
                case EK_OBJV:
                        clear_objv(f, msg);
                        break;
                }
        }
        memset(msg, 0, shape->size);
}

/* ---- encoding --------------------------------------------------------------------- */

static bool is_empty(const struct ext_field *f, const void *st) {
        switch (f->kind) {
        case EK_STR:
                return false;
        case EK_OSTR: {
                const char *s = *CMEMBER(st, f->off, char *);
                return !s || !*s;
        }
        case EK_STRV:
        case EK_ENV:
        case EK_OBJV:
                return *CMEMBER(st, f->aux, size_t) == 0;
        case EK_BYTES: {
                const struct vsock_bytes *b = CMEMBER(st, f->off, struct vsock_bytes);
                return !b->present || b->len == 0;
        }
        case EK_OBJ:
                return f->aux != EXT_NO_AUX && !*CMEMBER(st, f->aux, bool);
        }
        return get_scalar(f, st) == f->dflt;
}

static int enc_object(const struct ext_shape *shape, const void *st, struct buf *out);

static int enc_strv(const char *const *v, size_t n, struct buf *out) {
        int r = buf_append_byte(out, '[');
        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (i > 0 && (r = buf_append_byte(out, ',')) < 0)
                        break;
                r = json_enc_cstr(out, v[i]);
        }
        return r < 0 ? r : buf_append_byte(out, ']');
}

static int enc_objv(const struct ext_field *f, const void *st, struct buf *out) {
        const uint8_t *v = *CMEMBER(st, f->off, uint8_t *);
        size_t n = *CMEMBER(st, f->aux, size_t);
        int r = buf_append_byte(out, '[');
        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (i > 0 && (r = buf_append_byte(out, ',')) < 0)
                        break;
                r = enc_object(f->sub, v + i * f->sub->size, out);
        }
        return r < 0 ? r : buf_append_byte(out, ']');
}

static int enc_value(const struct ext_field *f, const void *st, struct buf *out) {
        switch (f->kind) {
        case EK_STR:
        case EK_OSTR:
                return json_enc_cstr(out, *CMEMBER(st, f->off, char *));
        case EK_STRV:
                return enc_strv(*CMEMBER(st, f->off, char *const *), *CMEMBER(st, f->aux, size_t), out);
        case EK_ENV:
                return msg_encode_env(out, *CMEMBER(st, f->off, struct vsock_env *), *CMEMBER(st, f->aux, size_t));
        case EK_BYTES: {
                const struct vsock_bytes *b = CMEMBER(st, f->off, struct vsock_bytes);
                return b->present ? json_enc_base64(out, b->data, b->len) : json_enc_null(out);
        }
        case EK_BOOL:
                return json_enc_bool(out, *CMEMBER(st, f->off, bool));
        case EK_I32:
        case EK_I64:
        case EK_U16:
        case EK_U32:
                return json_enc_int64(out, get_scalar(f, st));
        case EK_U64: {
                uint64_t v = *CMEMBER(st, f->off, uint64_t);
                return v > INT64_MAX ? -EINVAL : json_enc_uint64(out, v);
        }
        case EK_OBJ:
                return enc_object(f->sub, CMEMBER(st, f->off, void), out);
        case EK_OBJV:
                return enc_objv(f, st, out);
        }
        return -EINVAL;
}

/* A count without its array would be dereferenced: refuse it up front. */
static bool counts_consistent(const struct ext_field *f, const void *st) {
        switch (f->kind) {
        case EK_STRV:
        case EK_ENV:
        case EK_OBJV:
                return *CMEMBER(st, f->aux, size_t) == 0 || *CMEMBER(st, f->off, void *);
        case EK_BYTES: {
                const struct vsock_bytes *b = CMEMBER(st, f->off, struct vsock_bytes);
                return b->len == 0 || b->data;
        }
        }
        return true;
}

static int enc_object(const struct ext_shape *shape, const void *st, struct buf *out) {
        bool first = true;
        int r = buf_append_byte(out, '{');
        for (size_t i = 0; r >= 0 && i < shape->n_fields; i++) {
                const struct ext_field *f = &shape->fields[i];
                if (!counts_consistent(f, st))
                        return -EINVAL;
                if (f->omit && is_empty(f, st))
                        continue;
                if (!first && (r = buf_append_byte(out, ',')) < 0)
                        break;
                first = false;
                r = json_enc_key(out, f->name, strlen(f->name));
                if (r >= 0)
                        r = enc_value(f, st, out);
        }
        return r < 0 ? r : buf_append_byte(out, '}');
}

int ext_encode(const struct ext_shape *shape, const void *msg, struct buf *out) {
        if (!shape || !msg || !out)
                return -EINVAL;
        size_t mark = buf_size(out);
        int r = enc_object(shape, msg, out);
        if (r < 0) /* all or nothing */
                (void) buf_truncate(out, mark);
        return r;
}

/* ---- decoding ------------------------------------------------------------------------- */

/* Refusals name the field with its path ("entries[].mode"): the text is
 * built here, per thread, and valid until the thread's next decode. Kept
 * per thread rather than passed in, as strerror() keeps its text: the
 * decoders' `const char **ret_why` contract is shared with the base
 * messages' (static texts), and every caller reads the reason at once. */
static _Thread_local char why_buf[192];

struct dec {
        const char *prefix; /* "" or "stat." or "entries[]." */
        const char *why;
};

static int refuse(struct dec *d, const struct ext_field *f, const char *what) {
        snprintf(why_buf, sizeof why_buf, "field \"%s%s\": %s", d->prefix, f->name, what);
        d->why = why_buf;
        return DECODE_ERR;
}

static const struct ext_field *find_field(const struct ext_shape *shape, const char *key) {
        size_t len = strlen(key);
        for (size_t i = 0; i < shape->n_fields; i++)
                if (strcmp(shape->fields[i].name, key) == 0)
                        return &shape->fields[i];
        for (size_t i = 0; i < shape->n_fields; i++)
                if (msg_key_matches(shape->fields[i].name, key, len))
                        return &shape->fields[i];
        return NULL;
}

/* A malloc'd copy of a JSON string (null: ""); -EINVAL when it holds NUL. */
static int dup_json_string(json_t *v, char **ret) {
        const char *s = json_is_null(v) ? "" : json_string_value(v);
        size_t len = json_is_null(v) ? 0 : json_string_length(v);
        if (memchr(s, 0, len))
                return -EINVAL;
        char *c = strndup(s, len);
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

static int dec_object(json_t *obj, const struct ext_shape *shape, void *st, struct dec *d);

static int dec_string(const struct ext_field *f, json_t *v, void *st, struct dec *d) {
        char **p = MEMBER(st, f->off, char *);
        char *s = NULL;
        if (json_is_null(v))
                return 0; /* Go: no effect on a string */
        if (!json_is_string(v))
                return refuse(d, f, "expected string");
        if (f->kind == EK_STR || json_string_length(v) > 0) {
                int r = dup_json_string(v, &s);
                if (r == -EINVAL)
                        return refuse(d, f, "string contains NUL");
                if (r < 0)
                        return r;
        }
        free(*p);
        *p = s;
        return 0;
}

static int dec_strv(const struct ext_field *f, json_t *v, void *st, struct dec *d) {
        char ***pv = MEMBER(st, f->off, char **);
        size_t *pn = MEMBER(st, f->aux, size_t);
        msg_strv_free(*pv, *pn);
        *pv = NULL;
        *pn = 0;
        if (json_is_null(v))
                return 0;
        if (!json_is_array(v))
                return refuse(d, f, "expected array of strings");
        size_t n = json_array_size(v);
        if (n == 0)
                return 0;
        /* The struct owns the array at once: a failure midway is freed
         * by the caller's ext_clear. */
        if (!(*pv = calloc(n, sizeof(char *))))
                return -ENOMEM;
        *pn = n;
        for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(v, i);
                if (!json_is_string(e) && !json_is_null(e))
                        return refuse(d, f, "expected array of strings");
                int r = dup_json_string(e, &(*pv)[i]);
                if (r == -EINVAL)
                        return refuse(d, f, "string contains NUL");
                if (r < 0)
                        return r;
        }
        return 0;
}

static int dec_env(const struct ext_field *f, json_t *v, void *st, struct dec *d) {
        struct vsock_env **pe = MEMBER(st, f->off, struct vsock_env *);
        size_t *pn = MEMBER(st, f->aux, size_t);
        bool nul = false;
        msg_env_free(*pe, *pn, true);
        *pe = NULL;
        *pn = 0;
        if (json_is_null(v))
                return 0;
        if (!json_is_object(v))
                return refuse(d, f, "expected object of strings");
        int r = msg_env_from_json(v, pe, pn, &nul);
        if (r == -EINVAL)
                return refuse(d, f, nul ? "string contains NUL" : "expected object of strings");
        return r;
}

static int dec_bytes(const struct ext_field *f, json_t *v, void *st, struct dec *d) {
        struct vsock_bytes *b = MEMBER(st, f->off, struct vsock_bytes);
        msg_bytes_free(b, true);
        if (json_is_null(v))
                return 0;
        if (!json_is_string(v))
                return refuse(d, f, "expected base64 string");
        size_t len = json_string_length(v), max = base64_decoded_max(len), n = 0;
        _cleanup_free_ uint8_t *data = max > 0 ? malloc(max) : NULL;
        if (max > 0 && !data)
                return -ENOMEM;
        if (base64_decode(json_string_value(v), len, data, &n) < 0)
                return refuse(d, f, "invalid base64");
        *b = (struct vsock_bytes) { .present = true, .len = n, .data = n > 0 ? TAKE_PTR(data) : NULL };
        return 0;
}

static int dec_integer(const struct ext_field *f, json_t *v, void *st, struct dec *d) {
        static const struct {
                int64_t lo, hi;
                const char *why;
        } range[] = {
                [EK_I32] = { INT32_MIN, INT32_MAX, "number out of range for int32" },
                [EK_I64] = { INT64_MIN, INT64_MAX, "number out of range" },
                [EK_U16] = { 0, UINT16_MAX, "number out of range for uint16" },
                [EK_U32] = { 0, UINT32_MAX, "number out of range for uint32" },
                [EK_U64] = { 0, INT64_MAX, "number out of range for uint64" },
        };
        if (json_is_null(v))
                return 0;
        /* Go refuses 1.0 for an integer field. */
        if (json_is_real(v))
                return refuse(d, f, "expected integer");
        if (!json_is_integer(v))
                return refuse(d, f, "expected number");
        json_int_t x = json_integer_value(v);
        if (x < range[f->kind].lo || x > range[f->kind].hi)
                return refuse(d, f, range[f->kind].why);
        set_scalar(f, st, x);
        return 0;
}

/* Decode @v (an object) into @sub with the field path extended. */
static int dec_nested(const struct ext_field *f, const char *suffix, json_t *v, void *sub, struct dec *d) {
        char prefix[96];
        snprintf(prefix, sizeof prefix, "%s%s%s", d->prefix, f->name, suffix);
        struct dec inner = { .prefix = prefix };
        int r = dec_object(v, f->sub, sub, &inner);
        if (r < 0)
                d->why = inner.why;
        return r;
}

static int dec_obj(const struct ext_field *f, json_t *v, void *st, struct dec *d) {
        void *sub = MEMBER(st, f->off, void);
        bool *has = f->aux != EXT_NO_AUX ? MEMBER(st, f->aux, bool) : NULL;
        if (json_is_null(v)) {
                /* Go: a nil pointer; a struct value stays as it is. */
                if (has) {
                        ext_clear(f->sub, sub);
                        ext_init(f->sub, sub);
                        *has = false;
                }
                return 0;
        }
        if (!json_is_object(v))
                return refuse(d, f, "expected object");
        if (has && !*has) {
                ext_init(f->sub, sub);
                *has = true;
        }
        return dec_nested(f, ".", v, sub, d);
}

static int dec_objv(const struct ext_field *f, json_t *v, void *st, struct dec *d) {
        clear_objv(f, st);
        if (json_is_null(v))
                return 0;
        if (!json_is_array(v))
                return refuse(d, f, "expected array of objects");
        size_t n = json_array_size(v), size = f->sub->size;
        if (n == 0)
                return 0;
        uint8_t *arr = calloc(n, size);
        if (!arr)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                ext_init(f->sub, arr + i * size);
        *MEMBER(st, f->off, uint8_t *) = arr;
        *MEMBER(st, f->aux, size_t) = n;
        for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(v, i);
                if (json_is_null(e))
                        continue; /* Go: the zero value */
                if (!json_is_object(e))
                        return refuse(d, f, "expected array of objects");
                int r = dec_nested(f, "[].", e, arr + i * size, d);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int dec_field(const struct ext_field *f, json_t *v, void *st, struct dec *d) {
        switch (f->kind) {
        case EK_STR:
        case EK_OSTR:
                return dec_string(f, v, st, d);
        case EK_STRV:
                return dec_strv(f, v, st, d);
        case EK_ENV:
                return dec_env(f, v, st, d);
        case EK_BYTES:
                return dec_bytes(f, v, st, d);
        case EK_BOOL:
                if (json_is_null(v))
                        return 0;
                if (!json_is_boolean(v))
                        return refuse(d, f, "expected boolean");
                *MEMBER(st, f->off, bool) = json_is_true(v);
                return 0;
        case EK_I32:
        case EK_I64:
        case EK_U16:
        case EK_U32:
        case EK_U64:
                return dec_integer(f, v, st, d);
        case EK_OBJ:
                return dec_obj(f, v, st, d);
        case EK_OBJV:
                return dec_objv(f, v, st, d);
        }
        return -EINVAL;
}

/* Mandatory strings are never NULL after decoding, in nested structs
 * too (present ones: required, set optional, array elements). */
static int fill_required(const struct ext_shape *shape, void *st) {
        int r = 0;
        for (size_t i = 0; r >= 0 && i < shape->n_fields; i++) {
                const struct ext_field *f = &shape->fields[i];
                char **p = MEMBER(st, f->off, char *);
                if (f->kind == EK_STR && !*p && !(*p = strdup("")))
                        return -ENOMEM;
                if (f->kind == EK_OBJ && (f->aux == EXT_NO_AUX || *MEMBER(st, f->aux, bool)))
                        r = fill_required(f->sub, MEMBER(st, f->off, void));
                for (size_t k = 0; r >= 0 && f->kind == EK_OBJV && k < *MEMBER(st, f->aux, size_t); k++)
                        r = fill_required(f->sub, *MEMBER(st, f->off, uint8_t *) + k * f->sub->size);
        }
        return r;
}

static int dec_object(json_t *obj, const struct ext_shape *shape, void *st, struct dec *d) {
        const char *key;
        json_t *v;
        json_object_foreach(obj, key, v) {
                const struct ext_field *f = find_field(shape, key);
                if (!f)
                        continue; /* unknown fields are ignored, as in Go */
                int r = dec_field(f, v, st, d);
                if (r < 0)
                        return r;
        }
        return 0;
}

int ext_decode(const struct ext_shape *shape, const void *data, size_t len, void *ret, const char **ret_why) {
        struct dec d = { .prefix = "" };
        json_t *root = NULL;
        json_error_t e;
        int r;

        if (!shape || !ret || (!data && len > 0))
                return -EINVAL;
        _cleanup_free_ void *t = calloc(1, shape->size);
        if (!t) {
                d.why = "out of memory";
                r = -ENOMEM;
                goto out;
        }
        ext_init(shape, t);
        /* jansson's tree costs ~100 bytes per value: bound it first. */
        if (len > (size_t) JSON_VALUES_MAX && json_count_values(data, len, JSON_VALUES_MAX) > JSON_VALUES_MAX) {
                d.why = "too many JSON values";
                r = DECODE_ERR;
                goto out;
        }
        root = json_loadb(data ? data : "", len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        if (!root) {
                r = json_error_code(&e) == json_error_out_of_memory ? -ENOMEM : DECODE_ERR;
                d.why = msg_json_error_why(&e);
                goto out;
        }
        if (!json_is_object(root)) {
                d.why = "expected JSON object";
                r = DECODE_ERR;
                goto out;
        }
        r = dec_object(root, shape, t, &d);
        if (r >= 0)
                r = fill_required(shape, t);
        if (r == -ENOMEM)
                d.why = "out of memory";
out:
        json_decref(root);
        if (r < 0) {
                if (t)
                        ext_clear(shape, t);
                if (ret_why)
                        *ret_why = d.why ? d.why : "malformed message";
                return r;
        }
        memcpy(ret, t, shape->size);
        return 0;
}
