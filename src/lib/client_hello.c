/* Negotiation (PROTOCOL.md 2.2) and the plumbing every extension call
 * shares: Hello pipelined with the first request, the fallback when a
 * base agent closes, Error frames turned into return codes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"
#include "common/buf.h"
#include "common/macro.h"
#include "conn-internal.h"
#include "ext_msg.h"
#include "vsock/error.h"
#include "vsock/frame.h"
#include "vsock/version.h"


/* Bit i of enum vsock_feature is names[i]. */
static const char *const feature_names[] = {
        "reuse", "fs", "list", "file-get", "file-put", "tar-get", "tar-put", "proc", "fwd-connect", "fwd-listen",
        "checksum-crc32c",
};

_public_ const char *vsock_feature_name(unsigned feature) {
        if (feature == 0 || (feature & (feature - 1)) != 0)
                return NULL;
        unsigned i = (unsigned) __builtin_ctz(feature);
        return i < ARRAY_SIZE(feature_names) ? feature_names[i] : NULL;
}

_public_ unsigned vsock_feature_from_name(const char *name) {
        for (size_t i = 0; name && i < ARRAY_SIZE(feature_names); i++)
                if (strcmp(feature_names[i], name) == 0)
                        return 1u << i;
        return 0;
}

static void copy_text(char *dst, size_t size, const char *src) {
        snprintf(dst, size, "%s", src ? src : "");
}

static void caps_from_reply(const struct ext_hello_reply *r, struct vsock_caps *ret) {
        *ret = (struct vsock_caps) { .size = sizeof *ret, .version = r->version };
        size_t used = 0;
        for (size_t i = 0; i < r->n_features; i++) {
                ret->features |= vsock_feature_from_name(r->features[i]);
                int n = snprintf(ret->features_text + used, sizeof ret->features_text - used, "%s%s",
                                 i ? "," : "", r->features[i]);
                if (n < 0 || (size_t) n >= sizeof ret->features_text - used) {
                        ret->features_text[used] = '\0'; /* only whole names */
                        used = sizeof ret->features_text - 1;
                } else
                        used += (size_t) n;
        }
        copy_text(ret->agent, sizeof ret->agent, r->agent);
        copy_text(ret->boot_id, sizeof ret->boot_id, r->boot_id);
        const struct ext_limits *l = &r->limits;
        ret->limits = (struct vsock_limits) {
                .max_payload = l->max_payload,
                .data_max = l->data_max,
                .window_max = l->window_max,
                .list_page_max = l->list_page_max,
                .list_reply_max = l->list_reply_max,
                .procs_max = l->procs_max,
                .ring_default = l->ring_default,
                .ring_max = l->ring_max,
                .ring_total_max = l->ring_total_max,
                .proc_keep_s = l->proc_keep_s,
                .partial_keep_s = l->partial_keep_s,
                .fwd_listeners_max = l->fwd_listeners_max,
                .fwd_pending_max = l->fwd_pending_max,
                .fwd_attach_s = l->fwd_attach_s,
        };
}

static void cache_conn(const vsock_conn *c, const struct vsock_caps *caps) {
        char key[CAPS_KEY_MAX];
        if (caps_key_conn(c, key) >= 0)
                caps_cache_put(key, caps);
}

static int unsupported(struct vsock_call *call, unsigned feature, int err) {
        const char *name = vsock_feature_name(feature);
        client_diag(call, "agent does not support %s", name ? name : "extensions");
        return VSOCK_ERR(VSOCK_E_UNSUPPORTED, err);
}

int client_ext_unsupported(struct vsock_call *call, unsigned feature) {
        return unsupported(call, feature, ENOTSUP);
}

/* A write the agent's close cut short: the reply's read says why. */
static bool write_cut(int r) {
        int e = vsock_err_errno(r);
        return e == EPIPE || e == ECONNRESET;
}

static int hello_write(vsock_conn *c) {
        struct ext_hello h = { .version = EXT_VERSION, .client = (char *) "libvsock " VSOCK_VERSION_STRING };
        struct buf b = BUF_INIT(0);
        int r = ext_hello_encode(&h, &b);
        if (r >= 0)
                r = vsock_write_message(c, EXT_MSG_HELLO, buf_head(&b), buf_size(&b));
        buf_free(&b);
        return r;
}

/* The HelloReply of a Hello already sent. A close (or reset) before it,
 * or a version we do not speak, is a base agent. */
static int hello_read(vsock_conn *c, struct vsock_call *call, unsigned feature) {
        uint8_t type;
        _cleanup_free_ uint8_t *data = NULL;
        uint32_t len;
        int r = client_read_reply(c, call, &type, &data, &len);
        if (r < 0) {
                enum vsock_errkind k = vsock_err_kind(r);
                bool closed = k == VSOCK_E_CLOSED ||
                              (k == VSOCK_E_READ_RESPONSE_HEADER && vsock_err_errno(r) == ECONNRESET);
                if (!closed)
                        return r;
                cache_conn(c, NULL);
                return unsupported(call, feature, ENOTSUP);
        }
        if (type != EXT_MSG_HELLO_REPLY)
                return client_unexpected_frame(call, type, "HelloReply");
        struct ext_hello_reply rep;
        const char *why = NULL;
        r = ext_hello_reply_decode(data, len, &rep, &why);
        if (r < 0) {
                client_diag(call, "HelloReply: %s", why ? why : "malformed");
                return r;
        }
        if (rep.version < 1 || rep.version > EXT_VERSION) {
                ext_hello_reply_clear(&rep);
                cache_conn(c, NULL);
                return unsupported(call, feature, ENOTSUP);
        }
        struct vsock_caps *caps = malloc(sizeof *caps);
        if (!caps) {
                ext_hello_reply_clear(&rep);
                return -ENOMEM;
        }
        caps_from_reply(&rep, caps);
        ext_hello_reply_clear(&rep);
        free(c->caps);
        c->caps = caps;
        cache_conn(c, caps);
        return 0;
}

const struct vsock_caps *client_ext_caps(const vsock_conn *c) { return c ? c->caps : NULL; }

int client_ext_dial(const char *addr, struct vsock_call **call, struct vsock_call *fallback, vsock_conn **ret) {
        *call = client_call_resolve(*call, fallback);
        if (!*call)
                return -EINVAL;
        return client_dial(addr, VSOCK_PORT_EXEC, *call, ret);
}

int client_ext_send(vsock_conn *c, unsigned feature, uint8_t type, const void *payload, size_t len,
                    struct vsock_call *call) {
        client_call_apply(c, call);
        if (c->caps) {
                /* Negotiated already: nothing is sent for a missing feature. */
                if (feature && !(c->caps->features & feature))
                        return unsupported(call, feature, ENOTSUP);
                int r = vsock_write_message(c, type, payload, len);
                return r < 0 ? client_fail(c, r) : 0;
        }
        /* Hello and the request back to back: a base agent closes at Hello
         * without reading the request, ours answers both in order. */
        int r = hello_write(c);
        if (r >= 0)
                r = vsock_write_message(c, type, payload, len);
        if (r < 0 && !write_cut(r))
                return client_fail(c, r);
        r = hello_read(c, call, feature);
        if (r < 0)
                return client_fail(c, r);
        if (feature && !(c->caps->features & feature))
                /* The request is with the agent (which answers ENOSYS):
                 * the connection is spent. */
                return client_fail(c, unsupported(call, feature, ENOTSUP));
        return 0;
}

int client_ext_send_msg(vsock_conn *c, unsigned feature, uint8_t type, const struct ext_shape *shape, const void *msg,
                        struct vsock_call *call) {
        struct buf b = BUF_INIT(0);
        int r = ext_encode(shape, msg, &b);
        if (r < 0) {
                buf_free(&b);
                return vsock_err_wrap(VSOCK_E_ENCODE_FILE_REQUEST, r);
        }
        r = client_ext_send(c, feature, type, buf_head(&b), buf_size(&b), call);
        buf_free(&b);
        return r;
}

/* An Error frame's code as ours (client-internal.h, client_ext_read). */
static int error_code(const struct ext_error *e) {
        if (strcmp(e->code, "ELIMIT") == 0)
                return VSOCK_ERR(VSOCK_E_LIMIT, e->err > 0 ? e->err : 0);
        if (strcmp(e->code, "ECHECKSUM") == 0)
                return VSOCK_ERR(VSOCK_E_CHECKSUM, e->err > 0 ? e->err : 0);
        if (strcmp(e->code, "ENOSYS") == 0)
                return VSOCK_ERR(VSOCK_E_UNSUPPORTED, ENOSYS);
        if (strcmp(e->code, "EPROTO") == 0)
                return VSOCK_ERR(VSOCK_E_PROTOCOL, EPROTO);
        int err = e->err > 0 && e->err < 0x10000 ? e->err : 0;
        for (int i = 1; !err && i < 0x100; i++) {
                const char *n = strerrorname_np(i);
                if (n && strcmp(n, e->code) == 0)
                        err = i;
        }
        return VSOCK_ERR(VSOCK_E_REMOTE, err ? err : EIO);
}

int client_ext_error(struct vsock_call *call, const void *data, size_t len) {
        struct ext_error e;
        const char *why = NULL;
        int r = ext_error_decode(data, len, &e, &why);
        if (r < 0) {
                client_diag(call, "Error: %s", why ? why : "malformed");
                return r;
        }
        client_diag(call, "%s", e.message);
        r = error_code(&e);
        ext_error_clear(&e);
        return r;
}

static int ext_read(vsock_conn *c, struct vsock_call *call, uint8_t *ret_type, uint8_t **ret_data, uint32_t *ret_len,
                    bool *ret_error_frame) {
        uint8_t type;
        uint8_t *data = NULL;
        uint32_t len;
        *ret_error_frame = false;
        int r = client_read_reply(c, call, &type, &data, &len);
        if (r < 0)
                return r;
        if (type != EXT_MSG_ERROR) {
                *ret_type = type;
                *ret_data = data;
                *ret_len = len;
                return 0;
        }
        r = client_ext_error(call, data, len);
        free(data);
        *ret_error_frame = r != -ENOMEM && vsock_err_kind(r) != VSOCK_E_DECODE; /* else undecodable */
        return r < 0 ? r : -EPROTO; /* (an Error is always a failure) */
}

int client_ext_read(vsock_conn *c, struct vsock_call *call, uint8_t *ret_type, uint8_t **ret_data,
                    uint32_t *ret_len) {
        bool error_frame;
        return ext_read(c, call, ret_type, ret_data, ret_len, &error_frame);
}

int client_ext_reply(vsock_conn *c, struct vsock_call *call, uint8_t type, const struct ext_shape *shape, void *ret) {
        uint8_t rtype;
        _cleanup_free_ uint8_t *data = NULL;
        uint32_t len;
        bool error_frame;
        int r = ext_read(c, call, &rtype, &data, &len, &error_frame);
        if (r < 0)
                return error_frame && vsock_err_kind(r) != VSOCK_E_PROTOCOL ? r : client_fail(c, r);
        if (rtype != type) {
                const char *name = ext_msg_type_name(type);
                return client_fail(c, client_unexpected_frame(call, rtype, name ? name : "the reply"));
        }
        const char *why = NULL;
        r = ext_decode(shape, data, len, ret, &why);
        if (r < 0) {
                client_diag(call, "%s: %s", shape->name, why ? why : "malformed");
                return client_fail(c, r);
        }
        return 0;
}

int client_ext_call(vsock_conn *c, unsigned feature, uint8_t type, const struct ext_shape *shape, const void *msg,
                    uint8_t reply_type, const struct ext_shape *reply_shape, void *ret, struct vsock_call *call) {
        int r = client_ext_send_msg(c, feature, type, shape, msg, call);
        return r < 0 ? r : client_ext_reply(c, call, reply_type, reply_shape, ret);
}

_public_ int vsock_hello(vsock_conn *c, struct vsock_call *call, struct vsock_caps *ret) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || (ret && ret->size < sizeof ret->size))
                return -EINVAL;
        if (!c->caps) {
                client_call_apply(c, call);
                int r = hello_write(c);
                if (r < 0 && !write_cut(r))
                        return client_fail(c, r);
                r = hello_read(c, call, 0);
                if (r < 0)
                        return client_fail(c, r);
        }
        if (ret)
                caps_copy_out(c->caps, ret);
        return 0;
}

_public_ int vsock_hello_at(const char *addr, struct vsock_call *call, struct vsock_caps *ret) {
        struct vsock_call fallback;
        vsock_conn *c = NULL;
        int r = client_ext_dial(addr, &call, &fallback, &c);
        if (r < 0)
                return r;
        r = vsock_hello(c, call, ret);
        (void) vsock_conn_close(c);
        return r;
}
