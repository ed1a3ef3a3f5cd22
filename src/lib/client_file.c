/* The seed's WriteFileVsock, ReadFileVsock and ListFilesVsock: one request,
 * one FileResult. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client-internal.h"
#include "common/macro.h"
#include "vsock/error.h"
#include "vsock/frame.h"

/* Room for {"path":"...","content":"","mode":4294967295} around the
 * escaped path and the base64 content. */
#define WRITE_FILE_JSON_OVERHEAD 64u

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

/* Send one request and read the FileResult; the agent's error text becomes
 * VSOCK_E_FILE_REMOTE with the text in call->remote_error. */
static int file_roundtrip(vsock_conn *c, struct vsock_call *call, uint8_t type, const uint8_t *payload, size_t len,
                          struct vsock_file_response *ret) {
        client_call_apply(c, call);
        int r = vsock_write_message(c, type, payload, len);
        if (r < 0)
                return client_fail(c, r);

        uint8_t rtype;
        _cleanup_free_ uint8_t *data = NULL;
        uint32_t dlen;
        r = client_read_reply(c, call, &rtype, &data, &dlen);
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

_public_ int vsock_write_file(vsock_conn *c, const char *path, const void *data, size_t len, mode_t mode,
                              struct vsock_call *call) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!c || !path || (!data && len > 0))
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
        _cleanup_free_ uint8_t *payload = NULL;
        size_t plen;
        int r = vsock_write_file_request_encode(&req, &payload, &plen);
        if (r < 0)
                return vsock_err_wrap(VSOCK_E_ENCODE_FILE_REQUEST, r);
        if (plen > limit)
                return VSOCK_ERR(VSOCK_E_ENCODE_FILE_REQUEST, EFBIG);

        struct vsock_file_response resp = {};
        r = file_roundtrip(c, call, VSOCK_MSG_WRITE_FILE, payload, plen, &resp);
        vsock_file_response_clear(&resp);
        return r;
}

_public_ int vsock_read_file(vsock_conn *c, const char *path, struct vsock_call *call, uint8_t **ret_data,
                             size_t *ret_len) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!c || !path || !ret_data || !ret_len)
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
        if (!c || !path || !ret || !ret_n)
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
        vsock_conn *c = NULL;
        int r = client_dial(addr, VSOCK_PORT_EXEC, call, &c);
        if (r < 0)
                return r;
        r = vsock_list_files(c, path, call, ret, ret_n);
        (void) vsock_conn_close(c);
        return r;
}
