/* Dialing the agent and explaining what went wrong (agent.h). */
#include "agent.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cancel.h"
#include "cli.h"
#include "common/macro.h"

/* The hint for a failed connect, or NULL. @a is the parsed address. */
static const char *connect_hint(const struct vsock_addr *a, enum vsock_errkind k, int e) {
        bool file = a->transport == VSOCK_TRANSPORT_UNIX || a->transport == VSOCK_TRANSPORT_MUX;
        if (k == VSOCK_E_TIMEOUT)
                return "no answer within the connect timeout; --connect-timeout changes it";
        if (k == VSOCK_E_MUX_HANDSHAKE)
                return "the socket did not answer the hybrid vsock CONNECT handshake: is it a Firecracker or "
                       "Cloud Hypervisor vsock socket?";
        if (k == VSOCK_E_NOT_LISTENING)
                return "the VM is there but nothing listens on that port in the guest: is the agent running? "
                       "(vsockctl wait-ready waits for it)";
        if (k == VSOCK_E_RESOLVE)
                return NULL;
        switch (e) {
        case ENOENT:
                if (a->transport == VSOCK_TRANSPORT_MUX)
                        return "no socket there: is the VM running? Its VMM creates the hybrid vsock socket";
                return file ? "no socket there: is the agent running, with --listen unix:PATH?" : NULL;
        case EACCES:
        case EPERM:
                return file ? "only the socket's owner may connect (the agent creates it mode 0600): run vsockctl "
                              "as the agent's user or as root, or give the agent --allow-uid UID and this user "
                              "access to the socket file"
                            : NULL;
        case ECONNREFUSED:
                if (file)
                        return "the socket file is there but nothing accepts on it: the agent has stopped";
                return a->transport == VSOCK_TRANSPORT_TCP ? "nothing listens there: is the agent running with "
                                                             "--listen tcp:HOST:PORT?"
                                                           : "nothing listens on that port in the guest";
        case ECONNRESET:
                return a->transport == VSOCK_TRANSPORT_VSOCK
                               ? "nothing listens on that port in the guest: is the agent running?"
                               : NULL;
        case ENODEV:
        case ENETUNREACH:
        case EHOSTUNREACH:
                return a->transport == VSOCK_TRANSPORT_VSOCK
                               ? "no such guest: is the VM running, and is that its CID?"
                               : NULL;
        case EAFNOSUPPORT:
                return a->transport == VSOCK_TRANSPORT_VSOCK ? "this kernel has no AF_VSOCK (modprobe vsock)"
                                                             : NULL;
        default:
                return NULL;
        }
}

static int connect_timeout_ms(int64_t ns) {
        return ns > 0 ? (int) MIN((ns + 999999) / 1000000, (int64_t) INT32_MAX) : -1;
}

int agent_dial(const char *addr, uint32_t default_port, const char *cmd, vsock_conn **ret) {
        int r = vsock_dial_str(addr, default_port, connect_timeout_ms(cli_opts.connect_timeout_ns), cancel_fd(), ret);
        if (r >= 0)
                return r;
        if (vsock_err_kind(r) == VSOCK_E_CANCELLED && cancel_signo() != 0)
                return r; /* the caller exits with 128 + signo */

        struct vsock_addr a;
        if (vsock_addr_parse(addr, default_port, &a, NULL) < 0) {
                cli_error_rc(r, NULL, "%s: cannot connect to %s", cmd, addr);
                return r;
        }
        /* As given, with the port it defaulted to. */
        char shown[VSOCK_ADDR_PATH_MAX + VSOCK_ADDR_HOST_MAX + 32];
        int n = vsock_addr_format(&a, shown, sizeof shown);
        if (n < 0 || (size_t) n >= sizeof shown)
                snprintf(shown, sizeof shown, "%s", addr);
        enum vsock_errkind k = vsock_err_kind(r);
        const char *hint = connect_hint(&a, k, vsock_err_errno(r));
        /* The errno says it all; "connect to vsock" would mislead for unix
         * and TCP. */
        const char *why = k == VSOCK_E_CONNECT || k == VSOCK_E_CREATE_SOCKET ? strerror(vsock_err_errno(r))
                                                                           : vsock_strerror(r);
        if (k == VSOCK_E_TIMEOUT)
                cli_error("%s: cannot connect to %s: no answer within %s (%s)", cmd, shown,
                          cli_opts.connect_timeout_arg, hint);
        else if (hint)
                cli_error("%s: cannot connect to %s: %s (%s)", cmd, shown, why, hint);
        else
                cli_error("%s: cannot connect to %s: %s", cmd, shown, why);
        /* A connect timeout is a connect failure, not a reply timeout. */
        return k == VSOCK_E_TIMEOUT ? VSOCK_ERR(VSOCK_E_CONNECT, ETIMEDOUT) : r;
}

bool agent_dial_failed(int rc) {
        switch (vsock_err_kind(rc)) {
        case VSOCK_E_CONNECT:
        case VSOCK_E_CREATE_SOCKET:
        case VSOCK_E_RESOLVE:
        case VSOCK_E_MUX_HANDSHAKE:
        case VSOCK_E_NOT_LISTENING:
        case VSOCK_E_BAD_ADDRESS:
                return true;
        default:
                return false;
        }
}

int64_t agent_reply_deadline(void) {
        return cli_opts.reply_timeout_ns > 0 ? vsock_now_ns() + cli_opts.reply_timeout_ns : 0;
}

/* The probe of agent_check() on an open connection, which it spends. */
static int check_on(vsock_conn *c, int64_t timeout_ns, char *why, size_t why_size) {
        struct vsock_call call = VSOCK_CALL_INIT;
        if (timeout_ns > 0)
                call.deadline_ns = vsock_now_ns() + timeout_ns;
        int r = vsock_open_port_forward(c, NULL, 0, &call);
        (void) vsock_conn_close(c);
        /* A refusal is the expected answer; an accepted forward to port 0
         * would be odd, but it is an agent all the same. */
        if (r >= 0 || vsock_err_kind(r) == VSOCK_E_PORT_FORWARD_REJECTED)
                return 0;
        if (vsock_err_kind(r) == VSOCK_E_TIMEOUT)
                snprintf(why, why_size, "no reply to a request within %s either", cli_opts.reply_timeout_arg);
        else if (call.remote_error[0])
                snprintf(why, why_size, "%s: %s", vsock_strerror(r), call.remote_error);
        else
                snprintf(why, why_size, "%s", vsock_strerror(r));
        return r;
}

int agent_check(const char *addr, int64_t timeout_ns, char *why, size_t why_size) {
        int64_t t = timeout_ns > 0 ? timeout_ns : cli_opts.connect_timeout_ns;
        vsock_conn *c = NULL;
        int r = vsock_dial_str(addr, VSOCK_PORT_EXEC, connect_timeout_ms(t), -1, &c);
        if (r < 0) {
                snprintf(why, why_size, "%s", vsock_strerror(r));
                return r;
        }
        return check_on(c, timeout_ns, why, why_size);
}

int agent_verify(const char *addr, const char *cmd) {
        vsock_conn *c = NULL;
        int r = agent_dial(addr, VSOCK_PORT_EXEC, cmd, &c);
        if (r < 0)
                return r;
        char why[256];
        r = check_on(c, cli_opts.reply_timeout_ns, why, sizeof why);
        if (r < 0)
                cli_error("%s: %s does not answer as an agent: %s", cmd, addr, why);
        return r;
}

void agent_report(int rc, const struct vsock_call *call, const char *cmd, const char *addr) {
        if (vsock_err_kind(rc) == VSOCK_E_TIMEOUT)
                cli_error("%s: %s: no reply within %s: is an agent listening there? (--reply-timeout changes "
                          "the bound)",
                          cmd, addr, cli_opts.reply_timeout_arg);
        else
                cli_error_rc(rc, call, "%s: %s", cmd, addr);
}
