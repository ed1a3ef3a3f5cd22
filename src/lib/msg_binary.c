/* The binary payloads (Exit, Resize, Signal), message type names, Go
 * os.FileMode <-> mode_t, and the release functions of msg.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/macro.h"
#include "msg-internal.h"
#include "vsock/error.h"

#define DECODE_ERR VSOCK_ERR(VSOCK_E_DECODE, EINVAL)

static const char *const type_names[] = {
        [VSOCK_MSG_EXEC] = "Exec",
        [VSOCK_MSG_EXEC_RESULT] = "ExecResult",
        [VSOCK_MSG_STDOUT] = "Stdout",
        [VSOCK_MSG_STDERR] = "Stderr",
        [VSOCK_MSG_SIGNAL] = "Signal",
        [VSOCK_MSG_READY] = "Ready",
        [VSOCK_MSG_STDIN] = "Stdin",
        [VSOCK_MSG_RESIZE] = "Resize",
        [VSOCK_MSG_EXEC_TTY] = "ExecTTY",
        [VSOCK_MSG_EXIT] = "Exit",
        [VSOCK_MSG_EXEC_STREAM] = "ExecStream",
        [VSOCK_MSG_EXEC_PIPE] = "ExecPipe",
        [VSOCK_MSG_PORT_FORWARD] = "PortForward",
        [VSOCK_MSG_WRITE_FILE] = "WriteFile",
        [VSOCK_MSG_READ_FILE] = "ReadFile",
        [VSOCK_MSG_LIST_FILES] = "ListFiles",
        [VSOCK_MSG_FILE_RESULT] = "FileResult",
};

_public_ const char *vsock_msg_type_name(uint8_t type) {
        return type < ARRAY_SIZE(type_names) ? type_names[type] : NULL;
}

/* ---- binary payloads -------------------------------------------------------- */

static void put_be16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) (v >> 8);
        p[1] = (uint8_t) v;
}

static uint16_t get_be16(const uint8_t *p) {
        return (uint16_t) (p[0] << 8 | p[1]);
}

void vsock_exit_encode(int32_t code, uint8_t out[4]) {
        /* Go sends uint32(code): -1 (killed by a signal) is ff ff ff ff. */
        uint32_t v = (uint32_t) code;
        out[0] = (uint8_t) (v >> 24);
        out[1] = (uint8_t) (v >> 16);
        out[2] = (uint8_t) (v >> 8);
        out[3] = (uint8_t) v;
}

int vsock_exit_decode(const void *data, size_t len, int32_t *ret_code) {
        const uint8_t *p = data;
        if (!p || len != 4)
                return DECODE_ERR;
        uint32_t v = (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
        if (ret_code)
                *ret_code = (int32_t) v; /* two's complement: ff ff ff ff -> -1 */
        return 0;
}

void vsock_resize_encode(uint16_t rows, uint16_t cols, uint8_t out[4]) {
        put_be16(out, rows);
        put_be16(out + 2, cols);
}

int vsock_resize_decode(const void *data, size_t len, uint16_t *ret_rows, uint16_t *ret_cols) {
        const uint8_t *p = data;
        if (!p || len != 4)
                return DECODE_ERR;
        if (ret_rows)
                *ret_rows = get_be16(p);
        if (ret_cols)
                *ret_cols = get_be16(p + 2);
        return 0;
}

int vsock_signal_decode(const void *data, size_t len, int *ret_signo) {
        const uint8_t *p = data;
        /* Linux signal numbers are 1..64 (SIGRTMAX); anything else cannot
         * be delivered and must not reach kill(2) as 0 (a probe). */
        if (!p || len != 1 || p[0] < 1 || p[0] > 64)
                return DECODE_ERR;
        if (ret_signo)
                *ret_signo = p[0];
        return 0;
}

/* ---- Go os.FileMode <-> mode_t ---------------------------------------------- */

/* As Go's os.Stat (fillFileStatFromSys) builds a FileMode. */
_public_ uint32_t vsock_go_mode_from_mode_t(mode_t m) {
        uint32_t g = (uint32_t) (m & 0777);
        switch (m & S_IFMT) {
        case S_IFBLK:
                g |= VSOCK_GO_MODE_DEVICE;
                break;
        case S_IFCHR:
                g |= VSOCK_GO_MODE_DEVICE | VSOCK_GO_MODE_CHAR_DEVICE;
                break;
        case S_IFDIR:
                g |= VSOCK_GO_MODE_DIR;
                break;
        case S_IFIFO:
                g |= VSOCK_GO_MODE_NAMED_PIPE;
                break;
        case S_IFLNK:
                g |= VSOCK_GO_MODE_SYMLINK;
                break;
        case S_IFSOCK:
                g |= VSOCK_GO_MODE_SOCKET;
                break;
        default: /* S_IFREG, or no type given (a bare permission value) */
                break;
        }
        if (m & S_ISUID)
                g |= VSOCK_GO_MODE_SETUID;
        if (m & S_ISGID)
                g |= VSOCK_GO_MODE_SETGID;
        if (m & S_ISVTX)
                g |= VSOCK_GO_MODE_STICKY;
        return g;
}

/* The permission and set-id/sticky bits as Go's syscallMode maps them,
 * plus the file type: S_IFREG when no type bit is set; 0 for
 * ModeIrregular (a type Go could not name). */
_public_ mode_t vsock_go_mode_to_mode_t(uint32_t g) {
        mode_t m = (mode_t) (g & 0777);
        if (g & VSOCK_GO_MODE_SETUID)
                m |= S_ISUID;
        if (g & VSOCK_GO_MODE_SETGID)
                m |= S_ISGID;
        if (g & VSOCK_GO_MODE_STICKY)
                m |= S_ISVTX;

        if (g & VSOCK_GO_MODE_DIR)
                m |= S_IFDIR;
        else if (g & VSOCK_GO_MODE_SYMLINK)
                m |= S_IFLNK;
        else if (g & VSOCK_GO_MODE_CHAR_DEVICE)
                m |= S_IFCHR;
        else if (g & VSOCK_GO_MODE_DEVICE)
                m |= S_IFBLK;
        else if (g & VSOCK_GO_MODE_NAMED_PIPE)
                m |= S_IFIFO;
        else if (g & VSOCK_GO_MODE_SOCKET)
                m |= S_IFSOCK;
        else if (!(g & VSOCK_GO_MODE_IRREGULAR))
                m |= S_IFREG;
        return m;
}

/* ---- release ---------------------------------------------------------------- */

void msg_strv_free(char **v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

void msg_env_free(struct vsock_env *e, size_t n, bool wipe) {
        for (size_t i = 0; e && i < n; i++) {
                free(e[i].key);
                if (wipe && e[i].value)
                        explicit_bzero(e[i].value, strlen(e[i].value));
                free(e[i].value);
        }
        free(e);
}

void msg_bytes_free(struct vsock_bytes *b, bool wipe) {
        if (wipe && b->data)
                explicit_bzero(b->data, b->len);
        free(b->data);
        *b = (struct vsock_bytes) {};
}

void msg_files_free(struct vsock_file_info *f, size_t n) {
        for (size_t i = 0; f && i < n; i++)
                free(f[i].name);
        free(f);
}

void msg_exec_request_wipe(struct vsock_exec_request *r) {
        if (!r)
                return;
        for (size_t i = 0; r->env && i < r->n_env; i++)
                if (r->env[i].value)
                        explicit_bzero(r->env[i].value, strlen(r->env[i].value));
        if (r->stdin_data.data)
                explicit_bzero(r->stdin_data.data, r->stdin_data.len);
}

/* Decoded strings are ours (malloc'd) even where the struct says const, so
 * that callers may point the same fields at literals. */
static void free_const(const void *p) {
        free((void *) p);
}

void vsock_exec_request_clear(struct vsock_exec_request *r, bool wipe) {
        if (!r)
                return;
        if (wipe)
                msg_exec_request_wipe(r);
        free_const(r->command);
        msg_strv_free(r->args, r->n_args);
        free_const(r->working_dir);
        msg_env_free(r->env, r->n_env, false);
        msg_bytes_free(&r->stdin_data, false);
        free_const(r->user);
        *r = (struct vsock_exec_request) {};
}

void vsock_exec_response_clear(struct vsock_exec_response *r) {
        if (!r)
                return;
        msg_bytes_free(&r->stdout_data, false);
        msg_bytes_free(&r->stderr_data, false);
        free(r->error);
        *r = (struct vsock_exec_response) {};
}

void vsock_port_forward_request_clear(struct vsock_port_forward_request *r) {
        if (!r)
                return;
        free_const(r->host);
        *r = (struct vsock_port_forward_request) {};
}

void vsock_write_file_request_clear(struct vsock_write_file_request *r) {
        if (!r)
                return;
        free_const(r->path);
        msg_bytes_free(&r->content, false);
        *r = (struct vsock_write_file_request) {};
}

void vsock_path_request_clear(struct vsock_path_request *r) {
        if (!r)
                return;
        free_const(r->path);
        *r = (struct vsock_path_request) {};
}

void vsock_file_info_clear(struct vsock_file_info *r) {
        if (!r)
                return;
        free(r->name);
        *r = (struct vsock_file_info) {};
}

void vsock_file_response_clear(struct vsock_file_response *r) {
        if (!r)
                return;
        msg_bytes_free(&r->content, false);
        msg_files_free(r->files, r->n_files);
        free(r->error);
        *r = (struct vsock_file_response) {};
}
