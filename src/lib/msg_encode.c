/* JSON encoders for the host-side Go declarations. Field order, omitempty
 * and escaping follow json.Marshal byte for byte (see json_enc.h); the
 * golden vectors in tests/data/wire-vectors.jsonl pin every rule. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "json_enc.h"
#include "msg-internal.h"

/* Every encoder keeps the size of @out on entry and truncates back to it on
 * failure, so a caller never sees half a message. buf_reserve may move the
 * data to the front of the allocation, so the size (not a pointer) is the
 * stable mark. */
#define TRY(expr)                        \
        do {                             \
                r = (expr);              \
                if (r < 0)               \
                        goto fail;       \
        } while (0)

static void rollback(struct buf *out, size_t mark) {
        (void) buf_truncate(out, mark); /* mark <= size: appends only grow it */
}

static bool str_empty(const char *s) {
        return !s || !*s;
}

static bool bytes_empty(const struct vsock_bytes *b) {
        return !b->present || b->len == 0;
}

static int enc_bytes(struct buf *out, const struct vsock_bytes *b) {
        if (!b->present)
                return json_enc_null(out);
        if (b->len > 0 && !b->data)
                return -EINVAL;
        return json_enc_base64(out, b->data, b->len);
}

/* Go sorts map keys by their raw bytes; strcmp compares as unsigned char,
 * which is the same order. Ties keep the caller's order so the last of
 * several equal keys can win, as a map assignment would. */
static int env_cmp(const void *a, const void *b) {
        const struct vsock_env *x = *(const struct vsock_env *const *) a;
        const struct vsock_env *y = *(const struct vsock_env *const *) b;
        int c = strcmp(x->key ? x->key : "", y->key ? y->key : "");
        if (c != 0)
                return c;
        return x < y ? -1 : x > y;
}

int msg_encode_env(struct buf *out, const struct vsock_env *env, size_t n) {
        _cleanup_free_ const struct vsock_env **idx = calloc(n, sizeof *idx);
        int r;
        if (!idx)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                idx[i] = &env[i];
        /* Sort an index, never the caller's array. */
        qsort(idx, n, sizeof *idx, env_cmp);

        r = buf_append_byte(out, '{');
        if (r < 0)
                return r;
        bool first = true;
        for (size_t i = 0; i < n; i++) {
                const char *k = idx[i]->key ? idx[i]->key : "";
                if (i + 1 < n && strcmp(k, idx[i + 1]->key ? idx[i + 1]->key : "") == 0)
                        continue; /* a later duplicate wins */
                if (!first) {
                        r = buf_append_byte(out, ',');
                        if (r < 0)
                                return r;
                }
                first = false;
                r = json_enc_key(out, k, strlen(k));
                if (r < 0)
                        return r;
                r = json_enc_cstr(out, idx[i]->value);
                if (r < 0)
                        return r;
        }
        return buf_append_byte(out, '}');
}

static int enc_exec(const struct vsock_exec_request *q, bool tty, struct buf *out) {
        size_t mark = buf_size(out);
        int r;

        if (!q || (q->n_args > 0 && !q->args) || (q->n_env > 0 && !q->env))
                return -EINVAL;

        TRY(json_enc_raw(out, "{\"command\":"));
        TRY(json_enc_cstr(out, q->command));
        if (q->n_args > 0) {
                TRY(json_enc_raw(out, ",\"args\":["));
                for (size_t i = 0; i < q->n_args; i++) {
                        if (i > 0)
                                TRY(buf_append_byte(out, ','));
                        TRY(json_enc_cstr(out, q->args[i]));
                }
                TRY(buf_append_byte(out, ']'));
        }
        if (!str_empty(q->working_dir)) {
                TRY(json_enc_raw(out, ",\"working_dir\":"));
                TRY(json_enc_cstr(out, q->working_dir));
        }
        if (q->n_env > 0) {
                TRY(json_enc_raw(out, ",\"env\":"));
                TRY(msg_encode_env(out, q->env, q->n_env));
        }
        if (tty) {
                TRY(json_enc_raw(out, ",\"rows\":"));
                TRY(json_enc_uint64(out, q->rows));
                TRY(json_enc_raw(out, ",\"cols\":"));
                TRY(json_enc_uint64(out, q->cols));
        } else if (!bytes_empty(&q->stdin_data)) {
                TRY(json_enc_raw(out, ",\"stdin\":"));
                TRY(enc_bytes(out, &q->stdin_data));
        }
        if (!str_empty(q->user)) {
                TRY(json_enc_raw(out, ",\"user\":"));
                TRY(json_enc_cstr(out, q->user));
        }
        TRY(buf_append_byte(out, '}'));
        return 0;
fail:
        rollback(out, mark);
        return r;
}

int msg_encode_exec_request(const struct vsock_exec_request *q, struct buf *out) {
        return enc_exec(q, false, out);
}

int msg_encode_exec_tty_request(const struct vsock_exec_request *q, struct buf *out) {
        return enc_exec(q, true, out);
}

int msg_encode_exec_response(const struct vsock_exec_response *p, struct buf *out) {
        size_t mark = buf_size(out);
        int r;

        if (!p)
                return -EINVAL;
        TRY(json_enc_raw(out, "{\"exit_code\":"));
        TRY(json_enc_int64(out, p->exit_code));
        if (!bytes_empty(&p->stdout_data)) {
                TRY(json_enc_raw(out, ",\"stdout\":"));
                TRY(enc_bytes(out, &p->stdout_data));
        }
        if (!bytes_empty(&p->stderr_data)) {
                TRY(json_enc_raw(out, ",\"stderr\":"));
                TRY(enc_bytes(out, &p->stderr_data));
        }
        if (!str_empty(p->error)) {
                TRY(json_enc_raw(out, ",\"error\":"));
                TRY(json_enc_cstr(out, p->error));
        }
        TRY(buf_append_byte(out, '}'));
        return 0;
fail:
        rollback(out, mark);
        return r;
}

int msg_encode_exec_response_agent(const struct vsock_exec_response *p, struct buf *out) {
        size_t mark = buf_size(out);
        int r;

        if (!p)
                return -EINVAL;
        TRY(json_enc_raw(out, "{\"exit_code\":"));
        TRY(json_enc_int64(out, p->exit_code));
        TRY(json_enc_raw(out, ",\"stdout\":"));
        TRY(enc_bytes(out, &p->stdout_data));
        TRY(json_enc_raw(out, ",\"stderr\":"));
        TRY(enc_bytes(out, &p->stderr_data));
        TRY(json_enc_raw(out, ",\"error\":"));
        TRY(json_enc_cstr(out, p->error));
        TRY(buf_append_byte(out, '}'));
        return 0;
fail:
        rollback(out, mark);
        return r;
}

int msg_encode_port_forward_request(const struct vsock_port_forward_request *p, struct buf *out) {
        size_t mark = buf_size(out);
        int r;

        if (!p)
                return -EINVAL;
        TRY(buf_append_byte(out, '{'));
        if (!str_empty(p->host)) {
                TRY(json_enc_raw(out, "\"host\":"));
                TRY(json_enc_cstr(out, p->host));
                TRY(buf_append_byte(out, ','));
        }
        TRY(json_enc_raw(out, "\"port\":"));
        TRY(json_enc_uint64(out, p->port));
        TRY(buf_append_byte(out, '}'));
        return 0;
fail:
        rollback(out, mark);
        return r;
}

int msg_encode_window_size(const struct vsock_window_size *w, struct buf *out) {
        size_t mark = buf_size(out);
        int r;

        if (!w)
                return -EINVAL;
        TRY(json_enc_raw(out, "{\"rows\":"));
        TRY(json_enc_uint64(out, w->rows));
        TRY(json_enc_raw(out, ",\"cols\":"));
        TRY(json_enc_uint64(out, w->cols));
        TRY(buf_append_byte(out, '}'));
        return 0;
fail:
        rollback(out, mark);
        return r;
}

int msg_encode_write_file_request(const struct vsock_write_file_request *w, struct buf *out) {
        size_t mark = buf_size(out);
        int r;

        if (!w)
                return -EINVAL;
        TRY(json_enc_raw(out, "{\"path\":"));
        TRY(json_enc_cstr(out, w->path));
        TRY(json_enc_raw(out, ",\"content\":"));
        TRY(enc_bytes(out, &w->content));
        TRY(json_enc_raw(out, ",\"mode\":"));
        TRY(json_enc_uint64(out, w->mode));
        TRY(buf_append_byte(out, '}'));
        return 0;
fail:
        rollback(out, mark);
        return r;
}

int msg_encode_path_request(const struct vsock_path_request *p, struct buf *out) {
        size_t mark = buf_size(out);
        int r;

        if (!p)
                return -EINVAL;
        TRY(json_enc_raw(out, "{\"path\":"));
        TRY(json_enc_cstr(out, p->path));
        TRY(buf_append_byte(out, '}'));
        return 0;
fail:
        rollback(out, mark);
        return r;
}

/* No rollback of its own: the callers (one FileInfo, or an element of
 * FileResponse.files) truncate the whole message. */
static int enc_file_info(const struct vsock_file_info *f, struct buf *out) {
        int r;

        TRY(json_enc_raw(out, "{\"name\":"));
        TRY(json_enc_cstr(out, f->name));
        TRY(json_enc_raw(out, ",\"size\":"));
        TRY(json_enc_int64(out, f->size));
        TRY(json_enc_raw(out, ",\"mode\":"));
        TRY(json_enc_uint64(out, f->mode));
        TRY(json_enc_raw(out, ",\"is_dir\":"));
        TRY(json_enc_bool(out, f->is_dir));
        TRY(buf_append_byte(out, '}'));
        return 0;
fail:
        return r;
}

int msg_encode_file_info(const struct vsock_file_info *f, struct buf *out) {
        size_t mark = buf_size(out);
        int r;

        if (!f)
                return -EINVAL;
        TRY(enc_file_info(f, out));
        return 0;
fail:
        rollback(out, mark);
        return r;
}

int msg_encode_file_response(const struct vsock_file_response *p, struct buf *out) {
        size_t mark = buf_size(out);
        bool first = true;
        int r;

        if (!p || (p->n_files > 0 && !p->files))
                return -EINVAL;
        TRY(buf_append_byte(out, '{'));
        if (!bytes_empty(&p->content)) {
                TRY(json_enc_raw(out, "\"content\":"));
                TRY(enc_bytes(out, &p->content));
                first = false;
        }
        if (p->n_files > 0) {
                TRY(json_enc_raw(out, first ? "\"files\":[" : ",\"files\":["));
                for (size_t i = 0; i < p->n_files; i++) {
                        if (i > 0)
                                TRY(buf_append_byte(out, ','));
                        TRY(enc_file_info(&p->files[i], out));
                }
                TRY(buf_append_byte(out, ']'));
                first = false;
        }
        if (!str_empty(p->error)) {
                TRY(json_enc_raw(out, first ? "\"error\":" : ",\"error\":"));
                TRY(json_enc_cstr(out, p->error));
        }
        TRY(buf_append_byte(out, '}'));
        return 0;
fail:
        rollback(out, mark);
        return r;
}

/* ---- public wrappers ------------------------------------------------------ */

/* Run an appending encoder into a fresh buffer and hand the bytes out.
 * @wipe: the message may carry secrets (env values, stdin), so a failed
 * encoding is wiped before it is freed. */
static int encode_to_malloc(int (*enc)(const void *, struct buf *), const void *msg, bool wipe,
                            uint8_t **ret_data, size_t *ret_len) {
        struct buf b = BUF_INIT(0);
        int r;

        if (!ret_data || !ret_len)
                return -EINVAL;
        r = enc(msg, &b);
        if (r >= 0)
                r = buf_steal(&b, ret_data, ret_len);
        if (r < 0) {
                if (wipe)
                        buf_wipe_free(&b);
                else
                        buf_free(&b);
        }
        return r;
}

/* Adapters with the generic signature, so each wrapper stays one line and
 * no function pointer is cast to an incompatible type. */
#define ADAPT(fn, T)                                                 \
        static int fn##_any(const void *m, struct buf *out) {       \
                return fn((const T *) m, out);                       \
        }
ADAPT(msg_encode_exec_request, struct vsock_exec_request)
ADAPT(msg_encode_exec_tty_request, struct vsock_exec_request)
ADAPT(msg_encode_exec_response, struct vsock_exec_response)
ADAPT(msg_encode_port_forward_request, struct vsock_port_forward_request)
ADAPT(msg_encode_window_size, struct vsock_window_size)
ADAPT(msg_encode_write_file_request, struct vsock_write_file_request)
ADAPT(msg_encode_path_request, struct vsock_path_request)
ADAPT(msg_encode_file_info, struct vsock_file_info)
ADAPT(msg_encode_file_response, struct vsock_file_response)

int vsock_exec_request_encode(const struct vsock_exec_request *r, uint8_t **ret_data, size_t *ret_len) {
        return encode_to_malloc(msg_encode_exec_request_any, r, true, ret_data, ret_len);
}

int vsock_exec_tty_request_encode(const struct vsock_exec_request *r, uint8_t **ret_data,
                                           size_t *ret_len) {
        return encode_to_malloc(msg_encode_exec_tty_request_any, r, true, ret_data, ret_len);
}

int vsock_exec_response_encode(const struct vsock_exec_response *r, uint8_t **ret_data, size_t *ret_len) {
        return encode_to_malloc(msg_encode_exec_response_any, r, false, ret_data, ret_len);
}

int vsock_port_forward_request_encode(const struct vsock_port_forward_request *r, uint8_t **ret_data,
                                               size_t *ret_len) {
        return encode_to_malloc(msg_encode_port_forward_request_any, r, false, ret_data, ret_len);
}

int vsock_window_size_encode(const struct vsock_window_size *r, uint8_t **ret_data, size_t *ret_len) {
        return encode_to_malloc(msg_encode_window_size_any, r, false, ret_data, ret_len);
}

int vsock_write_file_request_encode(const struct vsock_write_file_request *r, uint8_t **ret_data,
                                             size_t *ret_len) {
        return encode_to_malloc(msg_encode_write_file_request_any, r, false, ret_data, ret_len);
}

int vsock_path_request_encode(const struct vsock_path_request *r, uint8_t **ret_data, size_t *ret_len) {
        return encode_to_malloc(msg_encode_path_request_any, r, false, ret_data, ret_len);
}

int vsock_file_info_encode(const struct vsock_file_info *r, uint8_t **ret_data, size_t *ret_len) {
        return encode_to_malloc(msg_encode_file_info_any, r, false, ret_data, ret_len);
}

int vsock_file_response_encode(const struct vsock_file_response *r, uint8_t **ret_data,
                                        size_t *ret_len) {
        return encode_to_malloc(msg_encode_file_response_any, r, false, ret_data, ret_len);
}
