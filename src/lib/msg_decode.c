/* JSON decoders: jansson parses, a field table per Go struct maps keys to
 * struct members with Go's encoding/json rules:
 *
 *   - keys match field names exactly, or else case-insensitively (Go's
 *     folding, see msg_key_matches()); unknown keys are ignored; of
 *     duplicate keys the last wins (jansson keeps the last value);
 *   - null leaves a string, number or bool field untouched and sets a
 *     slice, map or []byte field to nil; a null array element or map value
 *     becomes the zero value;
 *   - integers must be JSON integers within the Go type's range (Go
 *     rejects 1.0 and 1e3 for int fields, and negative numbers for
 *     unsigned ones);
 *   - []byte is a base64 string (base64.StdEncoding) or, as Go also
 *     accepts, an array of numbers 0..255.
 *
 * On top of Go: strings holding NUL are rejected (no path, command or env
 * entry can carry one), the top level must be an object (Go would accept
 * null as a no-op), and mandatory strings (command, path, name) are never
 * NULL after decoding while optional ones (working_dir, user, host, error)
 * are NULL when absent or "". Known deviations, all on inputs Go never
 * produces: jansson rejects invalid UTF-8 and lone surrogate escapes that
 * Go would replace with U+FFFD, rejects NUL in object keys and numbers
 * beyond the int64/double range even in ignored fields, reads "-0" as 0 for
 * unsigned fields, and when differently-cased duplicates of one key are
 * mixed with exact duplicates it iterates keys in first-occurrence order.
 *
 * Big string values of the top-level object (base64 []byte fields of up to
 * 16 MiB) are cut out of the text before jansson parses it and read from
 * the caller's buffer instead (json_bigstr.h): same results, ~20x faster. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base64.h"
#include "huge.h"
#include "common/macro.h"
#include "json_bigstr.h"
#include "msg-internal.h"
#include "vsock/error.h"

#define DECODE_ERR VSOCK_ERR(VSOCK_E_DECODE, EINVAL)

enum fkind {
        F_STR,  /* string, never NULL after decoding */
        F_OSTR, /* optional string: NULL when absent or "" */
        F_STRV, /* []string: char ** + size_t count */
        F_ENV,  /* map[string]string: struct vsock_env * + size_t count */
        F_BYTES,
        F_I64,
        F_U16,
        F_U32,
        F_BOOL,
        F_FILES, /* []FileInfo: struct vsock_file_info * + size_t count */
};

struct field {
        const char *name;
        enum fkind kind;
        size_t off;
        size_t off_n;
        /* Static messages: wrong JSON type, bad value (NUL, base64,
         * non-integer), number out of range. */
        const char *why_type;
        const char *why_value;
        const char *why_range;
};

#define WHY(disp, what) "field \"" disp "\": " what

#define T_F_STR "expected string"
#define T_F_OSTR "expected string"
#define T_F_STRV "expected array of strings"
#define T_F_ENV "expected object of strings"
#define T_F_BYTES "expected base64 string"
#define T_F_I64 "expected number"
#define T_F_U16 "expected number"
#define T_F_U32 "expected number"
#define T_F_BOOL "expected boolean"
#define T_F_FILES "expected array of objects"

#define V_F_STR "string contains NUL"
#define V_F_OSTR "string contains NUL"
#define V_F_STRV "string contains NUL"
#define V_F_ENV "string contains NUL"
#define V_F_BYTES "invalid base64"
#define V_F_I64 "expected integer"
#define V_F_U16 "expected integer"
#define V_F_U32 "expected integer"
#define V_F_BOOL ""
#define V_F_FILES ""

#define R_F_BYTES "invalid byte array"
#define R_F_I64 "number out of range"
#define R_F_U16 "number out of range for uint16"
#define R_F_U32 "number out of range for uint32"

#define FIELD_FULL(S, nm, disp, member, nmember, K)                                                      \
        {                                                                                                 \
                .name = nm, .kind = K, .off = offsetof(S, member), .off_n = nmember,                     \
                .why_type = WHY(disp, T_##K), .why_value = WHY(disp, V_##K), .why_range = WHY(disp, R_##K) \
        }
#define R_F_STR ""
#define R_F_OSTR ""
#define R_F_STRV ""
#define R_F_ENV ""
#define R_F_BOOL ""
#define R_F_FILES ""

#define FIELD(S, nm, member, K) FIELD_FULL(S, nm, nm, member, 0, K)
#define FIELDN(S, nm, member, nmember, K) FIELD_FULL(S, nm, nm, member, offsetof(S, nmember), K)

typedef struct vsock_exec_request exec_req_t;
static const struct field exec_fields_any[] = {
        FIELD(exec_req_t, "command", command, F_STR),
        FIELDN(exec_req_t, "args", args, n_args, F_STRV),
        FIELD(exec_req_t, "working_dir", working_dir, F_OSTR),
        FIELDN(exec_req_t, "env", env, n_env, F_ENV),
        FIELD(exec_req_t, "stdin", stdin_data, F_BYTES),
        FIELD(exec_req_t, "user", user, F_OSTR),
        FIELD(exec_req_t, "rows", rows, F_U16),
        FIELD(exec_req_t, "cols", cols, F_U16),
};
/* ExecRequest: the first six of the union. */
static const struct field *const exec_fields_batch = exec_fields_any;
#define N_EXEC_BATCH 6
static const struct field exec_fields_tty[] = {
        FIELD(exec_req_t, "command", command, F_STR),
        FIELDN(exec_req_t, "args", args, n_args, F_STRV),
        FIELD(exec_req_t, "working_dir", working_dir, F_OSTR),
        FIELDN(exec_req_t, "env", env, n_env, F_ENV),
        FIELD(exec_req_t, "rows", rows, F_U16),
        FIELD(exec_req_t, "cols", cols, F_U16),
        FIELD(exec_req_t, "user", user, F_OSTR),
};

typedef struct vsock_exec_response exec_resp_t;
static const struct field exec_resp_fields[] = {
        FIELD(exec_resp_t, "exit_code", exit_code, F_I64),
        FIELD(exec_resp_t, "stdout", stdout_data, F_BYTES),
        FIELD(exec_resp_t, "stderr", stderr_data, F_BYTES),
        FIELD(exec_resp_t, "error", error, F_OSTR),
};

typedef struct vsock_port_forward_request pf_t;
static const struct field pf_fields[] = {
        FIELD(pf_t, "host", host, F_OSTR),
        FIELD(pf_t, "port", port, F_U16),
};

typedef struct vsock_window_size ws_t;
static const struct field ws_fields[] = {
        FIELD(ws_t, "rows", rows, F_U16),
        FIELD(ws_t, "cols", cols, F_U16),
};

typedef struct vsock_write_file_request wf_t;
static const struct field wf_fields[] = {
        FIELD(wf_t, "path", path, F_STR),
        FIELD(wf_t, "content", content, F_BYTES),
        FIELD(wf_t, "mode", mode, F_U32),
};

typedef struct vsock_path_request path_t;
static const struct field path_fields[] = {
        FIELD(path_t, "path", path, F_STR),
};

typedef struct vsock_file_info fi_t;
#define FILE_INFO_FIELDS(prefix)                                                \
        {                                                                       \
                FIELD_FULL(fi_t, "name", prefix "name", name, 0, F_STR),        \
                FIELD_FULL(fi_t, "size", prefix "size", size, 0, F_I64),        \
                FIELD_FULL(fi_t, "mode", prefix "mode", mode, 0, F_U32),        \
                FIELD_FULL(fi_t, "is_dir", prefix "is_dir", is_dir, 0, F_BOOL), \
        }
static const struct field fi_fields[] = FILE_INFO_FIELDS("");
static const struct field fi_elem_fields[] = FILE_INFO_FIELDS("files[].");

typedef struct vsock_file_response fr_t;
static const struct field fr_fields[] = {
        FIELD(fr_t, "content", content, F_BYTES),
        FIELDN(fr_t, "files", files, n_files, F_FILES),
        FIELD(fr_t, "error", error, F_OSTR),
};

/* ---- helpers ---------------------------------------------------------------- */

#define MEMBER(st, f, T) ((T *) ((uint8_t *) (st) + (f)->off))
#define COUNT(st, f) ((size_t *) ((uint8_t *) (st) + (f)->off_n))

bool msg_key_matches(const char *name, const char *key, size_t len) {
        const uint8_t *k = (const uint8_t *) key;
        size_t i = 0;

        for (const char *n = name; *n; n++) {
                if (i >= len)
                        return false;
                uint8_t c = k[i];
                if (c < 0x80) {
                        if (c != (uint8_t) *n) {
                                uint8_t up = (uint8_t) *n & (uint8_t) ~0x20;
                                if (up < 'A' || up > 'Z' || (c & (uint8_t) ~0x20) != up)
                                        return false;
                        }
                        i++;
                        continue;
                }
                /* The only non-ASCII runes that fold to ASCII letters. */
                if ((*n == 's' || *n == 'S') && len - i >= 2 && k[i] == 0xc5 && k[i + 1] == 0xbf) {
                        i += 2;
                        continue;
                }
                if ((*n == 'k' || *n == 'K') && len - i >= 3 && k[i] == 0xe2 && k[i + 1] == 0x84 &&
                    k[i + 2] == 0xaa) {
                        i += 3;
                        continue;
                }
                return false;
        }
        return i == len;
}

static const struct field *find_field(const struct field *fields, size_t n, const char *key) {
        size_t len = strlen(key);
        for (size_t i = 0; i < n; i++)
                if (strcmp(fields[i].name, key) == 0)
                        return &fields[i];
        for (size_t i = 0; i < n; i++)
                if (msg_key_matches(fields[i].name, key, len))
                        return &fields[i];
        return NULL;
}

/* A malloc'd copy of a JSON string; -EINVAL if it holds a NUL byte. */
static int dup_string(json_t *v, char **ret) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (memchr(s, 0, len))
                return -EINVAL;
        char *d = malloc(len + 1);
        if (!d)
                return -ENOMEM;
        memcpy(d, s, len + 1);
        *ret = d;
        return 0;
}

static int env_cmp(const void *a, const void *b) {
        return strcmp(((const struct vsock_env *) a)->key, ((const struct vsock_env *) b)->key);
}

/* Where a []byte field decoded in place ended up (msg_decode_write_file_inplace). */
struct inplace {
        uint8_t *data;
        size_t len;
        bool used;
};

/* The string values cut out of the text jansson parsed (json_bigstr.h). */
struct cut {
        const char *text;
        const struct json_bigstr_scan *scan;
        bool wipe;
        struct inplace *inplace; /* non-NULL: the text is ours to overwrite */
};

static int decode_object(json_t *obj, const struct field *fields, size_t n, void *st, const struct cut *cut,
                         bool strict, const char **why);

/* Go's encoding/json checks numbers against the Go type; reals are never
 * integers even when their value is (Go rejects 1.0 for an int). */
static int get_integer(const struct field *f, json_t *v, int64_t lo, int64_t hi, int64_t *ret,
                       const char **why) {
        if (json_is_real(v)) {
                *why = f->why_value;
                return DECODE_ERR;
        }
        if (!json_is_integer(v)) {
                *why = f->why_type;
                return DECODE_ERR;
        }
        json_int_t x = json_integer_value(v);
        if (x < lo || x > hi) {
                *why = f->why_range;
                return DECODE_ERR;
        }
        *ret = (int64_t) x;
        return 0;
}

/* A []byte field from the content of a JSON string: jansson's value, or
 * the raw text of a value cut out before parsing. */
static int decode_base64(const struct field *f, const char *s, size_t len, struct vsock_bytes *b,
                         const char **why) {
        size_t n = 0, max = base64_decoded_max(len);
        _cleanup_free_ uint8_t *d = max > 0 ? malloc(max) : NULL;
        if (max > 0 && !d)
                return -ENOMEM;
        huge_advise(d, max);
        if (base64_decode(s, len, d, &n) < 0) {
                *why = f->why_value;
                return DECODE_ERR;
        }
        msg_bytes_free(b, false);
        b->present = true;
        b->len = n;
        if (n > 0)
                b->data = TAKE_PTR(d);
        return 0;
}

static int decode_bytes(const struct field *f, json_t *v, struct vsock_bytes *b, const char **why) {
        if (json_is_null(v)) {
                msg_bytes_free(b, false);
                return 0;
        }
        if (json_is_string(v))
                return decode_base64(f, json_string_value(v), json_string_length(v), b, why);
        if (json_is_array(v)) {
                /* Go decodes a JSON array into []byte element by element. */
                size_t len = json_array_size(v);
                _cleanup_free_ uint8_t *d = len > 0 ? malloc(len) : NULL;
                if (len > 0 && !d)
                        return -ENOMEM;
                for (size_t i = 0; i < len; i++) {
                        json_t *e = json_array_get(v, i);
                        json_int_t x = 0;
                        if (json_is_integer(e))
                                x = json_integer_value(e);
                        else if (!json_is_null(e))
                                x = -1;
                        if (x < 0 || x > 255) {
                                *why = f->why_range;
                                return DECODE_ERR;
                        }
                        d[i] = (uint8_t) x;
                }
                msg_bytes_free(b, false);
                b->present = true;
                b->len = len;
                b->data = TAKE_PTR(d);
                return 0;
        }
        *why = f->why_type;
        return DECODE_ERR;
}

static int decode_strv(const struct field *f, json_t *v, void *st, const char **why) {
        char ***pv = MEMBER(st, f, char **);
        size_t *pn = COUNT(st, f);

        msg_strv_free(*pv, *pn);
        *pv = NULL;
        *pn = 0;
        if (json_is_null(v))
                return 0;
        if (!json_is_array(v)) {
                *why = f->why_type;
                return DECODE_ERR;
        }
        size_t n = json_array_size(v);
        if (n == 0)
                return 0;
        /* Owned by the struct right away: its clear frees a partial fill. */
        *pv = calloc(n, sizeof(char *));
        if (!*pv)
                return -ENOMEM;
        *pn = n;
        for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(v, i);
                int r;
                if (json_is_null(e))
                        r = ((*pv)[i] = strdup("")) ? 0 : -ENOMEM;
                else if (json_is_string(e))
                        r = dup_string(e, &(*pv)[i]);
                else {
                        *why = f->why_type;
                        return DECODE_ERR;
                }
                if (r == -EINVAL) {
                        *why = f->why_value;
                        return DECODE_ERR;
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

int msg_env_from_json(struct json_t *obj, struct vsock_env **pe, size_t *pn, bool *ret_nul) {
        size_t n = json_object_size(obj);
        if (n == 0)
                return 0;
        *pe = calloc(n, sizeof(struct vsock_env));
        if (!*pe)
                return -ENOMEM;
        *pn = n;

        /* jansson already merged duplicate keys (the last value wins), so
         * the keys are unique; they cannot hold NUL (jansson rejects that). */
        size_t i = 0;
        const char *key;
        json_t *val;
        json_object_foreach(obj, key, val) {
                struct vsock_env *e = &(*pe)[i++];
                int r;
                e->key = strdup(key);
                if (!e->key)
                        return -ENOMEM;
                if (json_is_null(val))
                        r = (e->value = strdup("")) ? 0 : -ENOMEM;
                else if (json_is_string(val))
                        r = dup_string(val, &e->value);
                else {
                        *ret_nul = false;
                        return -EINVAL;
                }
                if (r == -EINVAL)
                        *ret_nul = true;
                if (r < 0)
                        return r;
        }
        qsort(*pe, n, sizeof(struct vsock_env), env_cmp);
        return 0;
}

static int decode_env(const struct field *f, json_t *v, void *st, const char **why) {
        struct vsock_env **pe = MEMBER(st, f, struct vsock_env *);
        size_t *pn = COUNT(st, f);
        bool nul = false;

        msg_env_free(*pe, *pn, true);
        *pe = NULL;
        *pn = 0;
        if (json_is_null(v))
                return 0;
        if (!json_is_object(v)) {
                *why = f->why_type;
                return DECODE_ERR;
        }
        int r = msg_env_from_json(v, pe, pn, &nul);
        if (r == -EINVAL) {
                *why = nul ? f->why_value : f->why_type;
                return DECODE_ERR;
        }
        return r;
}

static int fill_required(const struct field *fields, size_t n, void *st) {
        for (size_t i = 0; i < n; i++) {
                char **p = MEMBER(st, &fields[i], char *);
                if (fields[i].kind == F_STR && !*p) {
                        *p = strdup("");
                        if (!*p)
                                return -ENOMEM;
                }
        }
        return 0;
}

static int decode_files(const struct field *f, json_t *v, void *st, const char **why) {
        struct vsock_file_info **pf = MEMBER(st, f, struct vsock_file_info *);
        size_t *pn = COUNT(st, f);

        msg_files_free(*pf, *pn);
        *pf = NULL;
        *pn = 0;
        if (json_is_null(v))
                return 0;
        if (!json_is_array(v)) {
                *why = f->why_type;
                return DECODE_ERR;
        }
        size_t n = json_array_size(v);
        if (n == 0)
                return 0;
        *pf = calloc(n, sizeof(struct vsock_file_info));
        if (!*pf)
                return -ENOMEM;
        *pn = n;
        for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(v, i);
                int r;
                if (json_is_object(e)) {
                        r = decode_object(e, fi_elem_fields, ARRAY_SIZE(fi_elem_fields), &(*pf)[i], NULL, false, why);
                        if (r < 0)
                                return r;
                } else if (!json_is_null(e)) {
                        *why = f->why_type;
                        return DECODE_ERR;
                }
                r = fill_required(fi_elem_fields, ARRAY_SIZE(fi_elem_fields), &(*pf)[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int decode_field(const struct field *f, json_t *v, void *st, const char **why) {
        int64_t x;
        int r;

        switch (f->kind) {
        case F_STR:
        case F_OSTR: {
                char **p = MEMBER(st, f, char *);
                char *s = NULL;
                if (json_is_null(v))
                        return 0; /* Go: no effect on a string */
                if (!json_is_string(v)) {
                        *why = f->why_type;
                        return DECODE_ERR;
                }
                if (f->kind == F_STR || json_string_length(v) > 0) {
                        r = dup_string(v, &s);
                        if (r == -EINVAL) {
                                *why = f->why_value;
                                return DECODE_ERR;
                        }
                        if (r < 0)
                                return r;
                }
                free(*p);
                *p = s;
                return 0;
        }
        case F_STRV:
                return decode_strv(f, v, st, why);
        case F_ENV:
                return decode_env(f, v, st, why);
        case F_BYTES:
                return decode_bytes(f, v, MEMBER(st, f, struct vsock_bytes), why);
        case F_FILES:
                return decode_files(f, v, st, why);
        case F_BOOL:
                if (json_is_null(v))
                        return 0;
                if (!json_is_boolean(v)) {
                        *why = f->why_type;
                        return DECODE_ERR;
                }
                *MEMBER(st, f, bool) = json_is_true(v);
                return 0;
        case F_I64:
                if (json_is_null(v))
                        return 0;
                r = get_integer(f, v, INT64_MIN, INT64_MAX, &x, why);
                if (r < 0)
                        return r;
                *MEMBER(st, f, int64_t) = x;
                return 0;
        case F_U16:
                if (json_is_null(v))
                        return 0;
                r = get_integer(f, v, 0, UINT16_MAX, &x, why);
                if (r < 0)
                        return r;
                *MEMBER(st, f, uint16_t) = (uint16_t) x;
                return 0;
        case F_U32:
                if (json_is_null(v))
                        return 0;
                r = get_integer(f, v, 0, UINT32_MAX, &x, why);
                if (r < 0)
                        return r;
                *MEMBER(st, f, uint32_t) = (uint32_t) x;
                return 0;
        }
        return -EINVAL;
}

/* The cut-out value of member @key, or NULL. The keys of a cut-out value
 * have no escape and the object no duplicate key (parse_cut() checked),
 * so the raw key is jansson's key and names this member only. */
static const struct json_bigstr *cut_find(const struct cut *cut, const char *key) {
        if (!cut)
                return NULL;
        size_t len = strlen(key);
        for (size_t i = 0; i < cut->scan->n_big; i++) {
                const struct json_bigstr *b = &cut->scan->big[i];
                if (b->key_len == len && memcmp(cut->text + b->key_off, key, len) == 0)
                        return b;
        }
        return NULL;
}

/* A field whose string value was cut out: its content is printable ASCII
 * without escapes, i.e. exactly jansson's value of that string. */
static int decode_field_cut(const struct field *f, const struct cut *cut, const struct json_bigstr *b, void *st,
                            const char **why) {
        const char *s = cut->text + b->off;

        if (f->kind == F_BYTES && cut->inplace) {
                /* Over its own text: no buffer the size of the value, and
                 * none of the page faults of fresh memory. */
                uint8_t *d = (uint8_t *) (uintptr_t) s;
                size_t n = 0;
                if (base64_decode(s, b->len, d, &n) < 0) {
                        *why = f->why_value;
                        return DECODE_ERR;
                }
                struct vsock_bytes *bytes = MEMBER(st, f, struct vsock_bytes);
                msg_bytes_free(bytes, false);
                bytes->present = true;
                *cut->inplace = (struct inplace) { .data = d, .len = n, .used = true };
                return 0;
        }
        if (f->kind == F_BYTES)
                return decode_base64(f, s, b->len, MEMBER(st, f, struct vsock_bytes), why);
        /* Any other field: rare (only hostile peers send 4 KiB commands),
         * so just give decode_field() the string jansson would have made. */
        json_t *v = json_stringn_nocheck(s, b->len);
        if (!v)
                return -ENOMEM;
        int r = decode_field(f, v, st, why);
        if (cut->wipe)
                explicit_bzero((char *) json_string_value(v), b->len);
        json_decref(v);
        return r;
}

/* @strict: a field set twice (two keys that fold to its name) is refused. */
static int decode_object(json_t *obj, const struct field *fields, size_t n, void *st, const struct cut *cut,
                         bool strict, const char **why) {
        const char *key;
        json_t *v;
        uint64_t seen = 0;

        json_object_foreach(obj, key, v) {
                const struct field *f = find_field(fields, n, key);
                if (!f)
                        continue; /* unknown fields are ignored, as in Go */
                if (strict && (size_t) (f - fields) < 64) {
                        uint64_t bit = UINT64_C(1) << (f - fields);
                        if (seen & bit) {
                                *why = "duplicate key in JSON object";
                                return DECODE_ERR;
                        }
                        seen |= bit;
                }
                const struct json_bigstr *b = cut_find(cut, key);
                int r = b ? decode_field_cut(f, cut, b, st, why) : decode_field(f, v, st, why);
                if (r < 0)
                        return r;
        }
        return 0;
}

const char *msg_json_error_why(const struct json_error_t *e) {
        switch (json_error_code(e)) {
        case json_error_out_of_memory:
                return "out of memory";
        case json_error_stack_overflow:
                return "JSON nested too deeply";
        case json_error_numeric_overflow:
                return "number out of range";
        case json_error_invalid_utf8:
                return "invalid UTF-8 in JSON";
        case json_error_null_byte_in_key:
                return "NUL byte in object key";
        case json_error_premature_end_of_input:
                return "unexpected end of JSON input";
        case json_error_end_of_input_expected:
                return "invalid character after top-level value";
        case json_error_duplicate_key:
                return "duplicate key in JSON object";
        default:
                return "malformed JSON";
        }
}

/* Zero the text of every string in a parsed tree before it is freed: the
 * request may carry secrets (env values, stdin) that should not linger in
 * freed heap memory. (jansson's own lexer buffers are out of reach.) */
static void json_wipe_strings(json_t *v) {
        if (json_is_string(v)) {
                size_t len = json_string_length(v);
                if (len > 0)
                        explicit_bzero((char *) json_string_value(v), len);
        } else if (json_is_array(v)) {
                for (size_t i = 0; i < json_array_size(v); i++)
                        json_wipe_strings(json_array_get(v, i));
        } else if (json_is_object(v)) {
                const char *k;
                json_t *e;
                json_object_foreach(v, k, e)
                        json_wipe_strings(e);
        }
}

/* jansson's tree of @text with the values of @scan cut out, or NULL when
 * that might not be the tree of the whole text (less those values): then
 * the caller parses the whole text, so that every error and every
 * duplicate key is handled exactly as without cutting. */
static json_t *parse_cut(const char *text, size_t len, const struct json_bigstr_scan *scan, bool wipe) {
        _cleanup_free_ char *small = NULL;
        size_t small_len = 0;
        json_error_t e;

        if (json_bigstr_reduce(text, len, scan, &small, &small_len) < 0)
                return NULL;
        json_t *root = json_loadb(small, small_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        if (wipe)
                explicit_bzero(small, small_len);
        if (!root)
                return NULL;
        /* Fewer keys than members written: a key occurs twice, and jansson
         * keeps its last value in the place of its first. Go never writes
         * that; leave it to the plain path. */
        if (!json_is_object(root) || json_object_size(root) != scan->n_members) {
                if (wipe)
                        json_wipe_strings(root);
                json_decref(root);
                return NULL;
        }
        return root;
}

static int decode_json(const void *data, size_t len, const struct field *fields, size_t n, void *st, bool wipe,
                       struct inplace *inplace, struct msg_decode_opts *o, const char **ret_why) {
        struct json_bigstr_scan scan;
        struct cut cut = { .text = data, .scan = &scan, .wipe = wipe, .inplace = inplace };
        const char *why = NULL;
        json_t *root = NULL;
        json_error_t e;
        int r;

        /* Each counted byte is one byte of text: only big texts can hold
         * too many, and those are refused before jansson builds a tree. */
        if (data && len > (size_t) JSON_VALUES_MAX &&
            json_count_values(data, len, JSON_VALUES_MAX) > JSON_VALUES_MAX) {
                why = "too many JSON values";
                r = DECODE_ERR;
                goto out;
        }
        if (data && len >= o->bigstr_min && json_bigstr_scan(data, len, o->bigstr_min, &scan) > 0)
                root = parse_cut(data, len, &scan, wipe);
        if (root)
                o->cut_hits++;
        else {
                /* Identical keys are jansson's to refuse; keys that only
                 * fold to the same field are decode_object's. */
                size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL | (o->strict ? JSON_REJECT_DUPLICATES : 0);
                cut.scan = NULL;
                root = json_loadb(data ? data : "", data ? len : 0, flags, &e);
        }
        if (!root) {
                r = json_error_code(&e) == json_error_out_of_memory ? -ENOMEM : DECODE_ERR;
                why = msg_json_error_why(&e);
                goto out;
        }
        if (!json_is_object(root)) {
                why = "expected JSON object";
                r = DECODE_ERR;
                goto out;
        }
        r = decode_object(root, fields, n, st, cut.scan ? &cut : NULL, o->strict, &why);
        if (r >= 0)
                r = fill_required(fields, n, st);
        if (r == -ENOMEM)
                why = "out of memory";
out:
        if (root) {
                if (wipe)
                        json_wipe_strings(root);
                json_decref(root);
        }
        if (r < 0 && ret_why)
                *ret_why = why ? why : "malformed message";
        return r;
}

/* ---- decoders by shape ------------------------------------------------------------ */

static void clear_exec_request(void *p) {
        vsock_exec_request_clear(p, true);
}
static void clear_exec_response(void *p) {
        vsock_exec_response_clear(p);
}
static void clear_port_forward_request(void *p) {
        vsock_port_forward_request_clear(p);
}
static void clear_nothing(void *p) {
}
static void clear_write_file_request(void *p) {
        vsock_write_file_request_clear(p);
}
static void clear_path_request(void *p) {
        vsock_path_request_clear(p);
}
static void clear_file_info(void *p) {
        vsock_file_info_clear(p);
}
static void clear_file_response(void *p) {
        vsock_file_response_clear(p);
}

static const struct shape {
        const struct field *fields;
        size_t n;
        size_t size;
        bool wipe; /* may hold secrets (env values, stdin) */
        void (*clear)(void *st);
} shapes[] = {
        [MSG_SHAPE_EXEC_REQUEST] = { exec_fields_any, ARRAY_SIZE(exec_fields_any), sizeof(exec_req_t), true,
                                     clear_exec_request },
        [MSG_SHAPE_EXEC_BATCH] = { exec_fields_batch, N_EXEC_BATCH, sizeof(exec_req_t), true, clear_exec_request },
        [MSG_SHAPE_EXEC_TTY] = { exec_fields_tty, ARRAY_SIZE(exec_fields_tty), sizeof(exec_req_t), true,
                                 clear_exec_request },
        [MSG_SHAPE_EXEC_RESPONSE] = { exec_resp_fields, ARRAY_SIZE(exec_resp_fields), sizeof(exec_resp_t), false,
                                      clear_exec_response },
        [MSG_SHAPE_PORT_FORWARD_REQUEST] = { pf_fields, ARRAY_SIZE(pf_fields), sizeof(pf_t), false,
                                             clear_port_forward_request },
        [MSG_SHAPE_WINDOW_SIZE] = { ws_fields, ARRAY_SIZE(ws_fields), sizeof(ws_t), false, clear_nothing },
        [MSG_SHAPE_WRITE_FILE_REQUEST] = { wf_fields, ARRAY_SIZE(wf_fields), sizeof(wf_t), false,
                                           clear_write_file_request },
        [MSG_SHAPE_PATH_REQUEST] = { path_fields, ARRAY_SIZE(path_fields), sizeof(path_t), false,
                                     clear_path_request },
        [MSG_SHAPE_FILE_INFO] = { fi_fields, ARRAY_SIZE(fi_fields), sizeof(fi_t), false, clear_file_info },
        [MSG_SHAPE_FILE_RESPONSE] = { fr_fields, ARRAY_SIZE(fr_fields), sizeof(fr_t), false, clear_file_response },
};

/* Big enough and aligned for every shape's struct. */
union any_msg {
        exec_req_t exec_req;
        exec_resp_t exec_resp;
        pf_t pf;
        ws_t ws;
        wf_t wf;
        path_t path;
        fi_t fi;
        fr_t fr;
};

int msg_decode(enum msg_shape shape, struct msg_decode_opts *o, const void *data, size_t len, void *ret,
               const char **ret_why) {
        struct msg_decode_opts dflt = MSG_DECODE_OPTS_INIT;
        union any_msg t;

        memset(&t, 0, sizeof t); /* every member, not just the first */
        if ((size_t) shape >= ARRAY_SIZE(shapes) || !shapes[shape].fields || !ret)
                return -EINVAL;
        const struct shape *sh = &shapes[shape];
        /* Decode into a zeroed temporary and move it out only on success,
         * so *ret is zeroed on failure whatever happened in between. */
        int r = decode_json(data, len, sh->fields, sh->n, &t, sh->wipe, NULL, o ? o : &dflt, ret_why);
        if (r < 0) {
                sh->clear(&t);
                memset(ret, 0, sh->size);
                return r;
        }
        memcpy(ret, &t, sh->size);
        return 0;
}

#define DEFINE_DECODER(fn, T, shape)                                                       \
        int fn(const void *data, size_t len, T *ret, const char **ret_why) {               \
                return msg_decode(shape, NULL, data, len, ret, ret_why);                   \
        }

DEFINE_DECODER(vsock_exec_request_decode, struct vsock_exec_request, MSG_SHAPE_EXEC_REQUEST)
DEFINE_DECODER(vsock_exec_response_decode, struct vsock_exec_response, MSG_SHAPE_EXEC_RESPONSE)
DEFINE_DECODER(vsock_port_forward_request_decode, struct vsock_port_forward_request, MSG_SHAPE_PORT_FORWARD_REQUEST)
DEFINE_DECODER(vsock_window_size_decode, struct vsock_window_size, MSG_SHAPE_WINDOW_SIZE)
DEFINE_DECODER(vsock_write_file_request_decode, struct vsock_write_file_request, MSG_SHAPE_WRITE_FILE_REQUEST)
DEFINE_DECODER(vsock_path_request_decode, struct vsock_path_request, MSG_SHAPE_PATH_REQUEST)
DEFINE_DECODER(vsock_file_info_decode, struct vsock_file_info, MSG_SHAPE_FILE_INFO)
DEFINE_DECODER(vsock_file_response_decode, struct vsock_file_response, MSG_SHAPE_FILE_RESPONSE)

int msg_decode_exec_request(const void *data, size_t len, bool tty, struct vsock_exec_request *ret,
                            const char **ret_why) {
        return msg_decode(tty ? MSG_SHAPE_EXEC_TTY : MSG_SHAPE_EXEC_BATCH, NULL, data, len, ret, ret_why);
}

int msg_decode_write_file_inplace_opts(struct msg_decode_opts *o, void *data, size_t len,
                                       struct vsock_write_file_request *ret, const uint8_t **ret_content,
                                       size_t *ret_content_len, const char **ret_why) {
        struct msg_decode_opts dflt = MSG_DECODE_OPTS_INIT;
        struct vsock_write_file_request t = {};
        struct inplace ip = {};
        if (!ret || !ret_content || !ret_content_len)
                return -EINVAL;
        int r = decode_json(data, len, wf_fields, ARRAY_SIZE(wf_fields), &t, false, &ip, o ? o : &dflt, ret_why);
        if (r < 0) {
                vsock_write_file_request_clear(&t);
                *ret = (struct vsock_write_file_request) {};
                return r;
        }
        *ret = t;
        /* A value the fast path did not cut out (short, escaped, or the
         * plain path) was decoded by jansson into a buffer of its own. */
        *ret_content = ip.used ? ip.data : t.content.data;
        *ret_content_len = ip.used ? ip.len : t.content.len;
        return 0;
}

int msg_decode_write_file_inplace(void *data, size_t len, struct vsock_write_file_request *ret,
                                  const uint8_t **ret_content, size_t *ret_content_len, const char **ret_why) {
        return msg_decode_write_file_inplace_opts(NULL, data, len, ret, ret_content, ret_content_len, ret_why);
}

int msg_decode_write_file_strict(const void *data, size_t len, struct vsock_write_file_request *ret,
                                 const char **ret_why) {
        struct msg_decode_opts o = MSG_DECODE_OPTS_INIT;
        o.strict = true;
        return msg_decode(MSG_SHAPE_WRITE_FILE_REQUEST, &o, data, len, ret, ret_why);
}
