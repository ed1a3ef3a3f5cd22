/* Exec requests as they go on the wire: safe on agents that honour `args`
 * and on agents that ignore it (client.h, "Exec requests"). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "client-internal.h"
#include "common/macro.h"
#include "shquote.h"
#include "vsock/error.h"

int client_encode_exec_request(const struct vsock_exec_request *req, bool tty, uint8_t **ret_data,
                               size_t *ret_len) {
        struct vsock_exec_request wire = *req;
        _cleanup_free_ char **argv = NULL;
        _cleanup_free_ char *line = NULL;

        if (!CLIENT_SIZE_KNOWN(req))
                return -EINVAL;
        if (req->n_args > 0 && !shquote_matches(req->command, req->args, req->n_args)) {
                /* The older form, program in `command`: send the whole
                 * vector as args and its quoting as the command, so an
                 * agent that ignores args runs the same program. */
                if (!req->command || !req->args)
                        return vsock_err_wrap(VSOCK_E_ENCODE_EXEC_REQUEST, -EINVAL);
                if (req->n_args > SIZE_MAX / sizeof *argv - 1)
                        return vsock_err_wrap(VSOCK_E_ENCODE_EXEC_REQUEST, -E2BIG);
                argv = malloc((req->n_args + 1) * sizeof *argv);
                if (!argv)
                        return -ENOMEM;
                argv[0] = (char *) req->command;
                for (size_t i = 0; i < req->n_args; i++)
                        argv[i + 1] = req->args[i];
                int r = vsock_shell_quote(argv, req->n_args + 1, &line);
                if (r < 0)
                        return vsock_err_wrap(VSOCK_E_ENCODE_EXEC_REQUEST, r);
                wire.command = line;
                wire.args = argv;
                wire.n_args = req->n_args + 1;
        }
        int r = tty ? vsock_exec_tty_request_encode(&wire, ret_data, ret_len)
                    : vsock_exec_request_encode(&wire, ret_data, ret_len);
        return r < 0 ? vsock_err_wrap(VSOCK_E_ENCODE_EXEC_REQUEST, r) : 0;
}
