/* The seed's WriteFileVsock, ReadFileVsock and ListFilesVsock: one request,
 * one FileResult. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "client-internal.h"
#include "common/buf.h"
#include "common/macro.h"
#include "conn-internal.h"
#include "vsock/error.h"
#include "vsock/frame.h"

/* Room for {"path":"...","content":"","mode":4294967295} around the
 * escaped path and the base64 content. */
#define WRITE_FILE_JSON_OVERHEAD 64u

/* Files from this size on are sent as they are encoded, in pieces of
 * WRITE_FILE_PIECE input bytes (a multiple of 3, so the pieces' base64
 * joins up): no buffer of 4/3 of the file, and none of the page faults of
 * fresh memory, which cost more than the encoding itself. */
#define WRITE_FILE_STREAM_MIN (256u * 1024)
#define WRITE_FILE_PIECE (3u * 64 * 1024)

/* Go's error text ends in the syscall's message ("open /x: no such file or
 * directory"): recover the errno when the tail is one of libc's messages,
 * so callers can tell ENOENT from EACCES. */
static int errno_from_go_text(const char *text) {
        const char *tail = strrchr(text, ':');
        tail = tail ? tail + 1 : text;
        while (*tail == ' ')
                tail++;
        if (!*tail)
                return EIO;
        for (int e = 1; e < 134; e++) {
                const char *d = strerrordesc_np(e);
                if (d && strcasecmp(d, tail) == 0)
                        return e;
        }
        return EIO;
}

/* Read the FileResult of a request already sent; the agent's error text
 * becomes VSOCK_E_FILE_REMOTE with the text in call->remote_error. */
static int file_read_result(vsock_conn *c, struct vsock_call *call, struct vsock_file_response *ret) {
        uint8_t rtype;
        _cleanup_free_ uint8_t *data = NULL;
        uint32_t dlen;
        int r = client_read_reply(c, call, &rtype, &data, &dlen);
        if (r < 0)
                return client_fail(c, r);
        if (rtype != VSOCK_MSG_FILE_RESULT)
                return client_fail(c, client_unexpected_frame(call, rtype, "FileResult"));

        struct vsock_file_response resp = {};
        const char *why = NULL;
        r = vsock_file_response_decode(data, dlen, &resp, &why);
        if (r < 0) {
                client_diag(call, "FileResult: %s", why ? why : "malformed");
                return client_fail(c, r);
        }
        if (resp.error && resp.error[0]) {
                client_diag(call, "%s", resp.error);
                int e = errno_from_go_text(resp.error);
                vsock_file_response_clear(&resp);
                return VSOCK_ERR(VSOCK_E_FILE_REMOTE, e);
        }
        *ret = resp;
        return 0;
}

/* Send one request and read its FileResult. */
static int file_roundtrip(vsock_conn *c, struct vsock_call *call, uint8_t type, const uint8_t *payload, size_t len,
                          struct vsock_file_response *ret) {
        client_call_apply(c, call);
        int r = vsock_write_message(c, type, payload, len);
        if (r < 0)
                return client_fail(c, r);
        return file_read_result(c, call, ret);
}

static int path_roundtrip(vsock_conn *c, struct vsock_call *call, uint8_t type, const char *path,
                          struct vsock_file_response *ret) {
        struct vsock_path_request req = { .path = (char *) path };
        _cleanup_free_ uint8_t *payload = NULL;
        size_t len;
        int r = vsock_path_request_encode(&req, &payload, &len);
        if (r < 0)
                return vsock_err_wrap(VSOCK_E_ENCODE_FILE_REQUEST, r);
        return file_roundtrip(c, call, type, payload, len, ret);
}

/* The pieces of a streamed WriteFile request: the JSON up to the
 * content, its base64 piece by piece, the rest. */
struct wf_stream {
        const uint8_t *head, *tail;
        size_t head_len, tail_len;
        const uint8_t *data;
        size_t len, off;
        int stage;
        struct buf piece;
};

static ssize_t wf_next(void *userdata, const void **ret_piece) {
        struct wf_stream *w = userdata;
        switch (w->stage) {
        case 0:
                w->stage = 1;
                *ret_piece = w->head;
                return (ssize_t) w->head_len;
        case 1:
                if (w->off < w->len) {
                        size_t n = w->len - w->off < WRITE_FILE_PIECE ? w->len - w->off : WRITE_FILE_PIECE;
                        buf_reset(&w->piece);
                        int r = base64_encode_append(&w->piece, w->data + w->off, n);
                        if (r < 0)
                                return r;
                        w->off += n;
                        *ret_piece = buf_head(&w->piece);
                        return (ssize_t) buf_size(&w->piece);
                }
                w->stage = 2;
                *ret_piece = w->tail;
                return (ssize_t) w->tail_len;
        default:
                return 0;
        }
}

/* The request's JSON exactly as the encoder writes it, but with the
 * content encoded as it is sent: the encoder writes the request with an
 * empty content, and the base64 goes between its quotes. */
static int write_file_streamed(vsock_conn *c, const struct vsock_write_file_request *req, size_t limit) {
        struct vsock_write_file_request empty = *req;
        empty.content = (struct vsock_bytes) { .data = (uint8_t *) "", .len = 0, .present = true };
        _cleanup_free_ uint8_t *json = NULL;
        size_t jlen;
        int r = vsock_write_file_request_encode(&empty, &json, &jlen);
        if (r < 0)
                return vsock_err_wrap(VSOCK_E_ENCODE_FILE_REQUEST, r);
        /* Every '"' of the path is escaped, so this is the member itself. */
        static const char key[] = "\"content\":\"\"";
        const uint8_t *at = memmem(json, jlen, key, sizeof key - 1);
        if (!at)
                return VSOCK_ERR(VSOCK_E_ENCODE_FILE_REQUEST, EPROTO);
        struct wf_stream w = {
                .head = json,
                .head_len = (size_t) (at - json) + sizeof key - 2, /* up to the opening quote */
                .data = req->content.data,
                .len = req->content.len,
        };
        w.tail = w.head + w.head_len;
        w.tail_len = jlen - w.head_len;
        size_t total = jlen + base64_encoded_len(w.len);
        if (total > limit)
                return VSOCK_ERR(VSOCK_E_ENCODE_FILE_REQUEST, EFBIG);
        w.piece = BUF_INIT(0);
        r = frame_write_pieces(c, VSOCK_MSG_WRITE_FILE, total, wf_next, &w);
        buf_free(&w.piece);
        if (r == -ENOMEM || r == -ENOBUFS)
                return vsock_err_wrap(VSOCK_E_ENCODE_FILE_REQUEST, r);
        return r;
}

_public_ int vsock_write_file(vsock_conn *c, const char *path, const void *data, size_t len, mode_t mode,
                              struct vsock_call *call) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !path || (!data && len > 0))
                return -EINVAL;

        /* Refuse before base64 allocates 4/3 of the file: the request must
         * fit one frame, which the agent limits to the default maximum.
         * Every path byte may take six when escaped. */
        size_t path_max = strlen(path) * 6;
        size_t limit = VSOCK_MAX_PAYLOAD_DEFAULT;
        if (path_max + WRITE_FILE_JSON_OVERHEAD >= limit ||
            len / 3 + 1 > (limit - WRITE_FILE_JSON_OVERHEAD - path_max) / 4) {
                client_diag(call, "%zu bytes do not fit one %u-byte request once base64-encoded", len,
                            VSOCK_MAX_PAYLOAD_DEFAULT);
                return VSOCK_ERR(VSOCK_E_ENCODE_FILE_REQUEST, EFBIG);
        }

        struct vsock_write_file_request req = {
                .path = (char *) path,
                /* Go sends nil content as null and an empty slice as "". */
                .content = { .data = (uint8_t *) data, .len = len, .present = data != NULL },
                .mode = mode == 0 ? 0 : vsock_go_mode_from_mode_t(mode),
        };
        struct vsock_file_response resp = {};
        int r;
        if (len >= WRITE_FILE_STREAM_MIN) {
                client_call_apply(c, call);
                r = write_file_streamed(c, &req, limit);
                if (r < 0)
                        return client_fail(c, r);
                r = file_read_result(c, call, &resp);
        } else {
                _cleanup_free_ uint8_t *payload = NULL;
                size_t plen;
                r = vsock_write_file_request_encode(&req, &payload, &plen);
                if (r < 0)
                        return vsock_err_wrap(VSOCK_E_ENCODE_FILE_REQUEST, r);
                if (plen > limit)
                        return VSOCK_ERR(VSOCK_E_ENCODE_FILE_REQUEST, EFBIG);
                r = file_roundtrip(c, call, VSOCK_MSG_WRITE_FILE, payload, plen, &resp);
        }
        vsock_file_response_clear(&resp);
        return r;
}

_public_ int vsock_read_file(vsock_conn *c, const char *path, struct vsock_call *call, uint8_t **ret_data,
                             size_t *ret_len) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !path || !ret_data || !ret_len)
                return -EINVAL;
        struct vsock_file_response resp = {};
        int r = path_roundtrip(c, call, VSOCK_MSG_READ_FILE, path, &resp);
        if (r < 0)
                return r;
        size_t n = resp.content.len;
        uint8_t *d = n > 0 ? TAKE_PTR(resp.content.data) : NULL;
        vsock_file_response_clear(&resp);
        *ret_data = d;
        *ret_len = n;
        return 0;
}

_public_ void vsock_file_entries_free(struct vsock_file_entry *e, size_t n) {
        if (!e)
                return;
        for (size_t i = 0; i < n; i++)
                free(e[i].name);
        free(e);
}

_public_ int vsock_list_files(vsock_conn *c, const char *path, struct vsock_call *call, struct vsock_file_entry **ret,
                              size_t *ret_n) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !path || !ret || !ret_n)
                return -EINVAL;
        struct vsock_file_response resp = {};
        int r = path_roundtrip(c, call, VSOCK_MSG_LIST_FILES, path, &resp);
        if (r < 0)
                return r;

        struct vsock_file_entry *e = NULL;
        size_t n = resp.n_files;
        if (n > 0) {
                e = calloc(n, sizeof *e);
                if (!e) {
                        vsock_file_response_clear(&resp);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < n; i++) {
                        struct vsock_file_info *fi = &resp.files[i];
                        e[i] = (struct vsock_file_entry) {
                                .name = TAKE_PTR(fi->name),
                                .size = fi->size,
                                .go_mode = fi->mode,
                                .mode = vsock_go_mode_to_mode_t(fi->mode),
                                .is_dir = fi->is_dir,
                        };
                }
        }
        vsock_file_response_clear(&resp);
        *ret = e;
        *ret_n = n;
        return 0;
}

_public_ int vsock_write_file_at(const char *addr, const char *path, const void *data, size_t len, mode_t mode,
                                 struct vsock_call *call) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call)
                return -EINVAL;
        vsock_conn *c = NULL;
        int r = client_dial(addr, VSOCK_PORT_EXEC, call, &c);
        if (r < 0)
                return r;
        r = vsock_write_file(c, path, data, len, mode, call);
        (void) vsock_conn_close(c);
        return r;
}

_public_ int vsock_read_file_at(const char *addr, const char *path, struct vsock_call *call, uint8_t **ret_data,
                                size_t *ret_len) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call)
                return -EINVAL;
        vsock_conn *c = NULL;
        int r = client_dial(addr, VSOCK_PORT_EXEC, call, &c);
        if (r < 0)
                return r;
        r = vsock_read_file(c, path, call, ret_data, ret_len);
        (void) vsock_conn_close(c);
        return r;
}

_public_ int vsock_list_files_at(const char *addr, const char *path, struct vsock_call *call,
                                 struct vsock_file_entry **ret, size_t *ret_n) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call)
                return -EINVAL;
        vsock_conn *c = NULL;
        int r = client_dial(addr, VSOCK_PORT_EXEC, call, &c);
        if (r < 0)
                return r;
        r = vsock_list_files(c, path, call, ret, ret_n);
        (void) vsock_conn_close(c);
        return r;
}
