/* Detached processes (PROTOCOL.md 2.7), host side: vsock_proc_*(). The
 * attach's output phase runs in the exec loop (client_attach_run). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"
#include "common/macro.h"
#include "ext_msg.h"
#include "vsock/error.h"

_public_ void vsock_proc_info_clear(struct vsock_proc_info *info) {
        if (!info)
                return;
        free(info->tag);
        free(info->command);
        for (size_t i = 0; i < info->n_args; i++)
                free(info->args[i]);
        free(info->args);
        *info = (struct vsock_proc_info) { 0 };
}

_public_ void vsock_proc_infos_free(struct vsock_proc_info *infos, size_t n) {
        for (size_t i = 0; infos && i < n; i++)
                vsock_proc_info_clear(&infos[i]);
        free(infos);
}

/* Move the wire form into the public one (the strings change hands). */
static void info_take(struct ext_proc_info *w, struct vsock_proc_info *ret) {
        *ret = (struct vsock_proc_info) {
                .id = w->id,
                .tag = TAKE_PTR(w->tag),
                .pid = w->pid,
                .command = TAKE_PTR(w->command),
                .args = TAKE_PTR(w->args),
                .n_args = w->n_args,
                .tty = w->tty,
                .running = !w->state || strcmp(w->state, "exited") != 0,
                .started_ns = w->started_ns,
                .ended_ns = w->ended_ns,
                .exit_code = w->exit_code,
                .signal = w->signal,
                .oom_killed = w->oom_killed,
                .ring_start = w->ring_start,
                .out_end = w->out_end,
                .stdin_open = w->stdin_open,
                .attached = w->attached,
        };
        w->n_args = 0;
}

static void end_from_wire(const struct ext_proc_end *w, struct vsock_proc_end *ret) {
        *ret = (struct vsock_proc_end) {
                .offset = w->offset,
                .exit_code = w->exit_code,
                .signal = w->signal,
                .oom_killed = w->oom_killed,
                .ended_ns = w->ended_ns,
        };
        snprintf(ret->reason, sizeof ret->reason, "%s", w->reason ? w->reason : "");
}

/* A request whose terminal reply is ProcInfo. */
static int info_call(vsock_conn *c, uint8_t type, const struct ext_shape *shape, const void *msg,
                     struct vsock_call *call, struct vsock_proc_info *ret) {
        int r = client_ext_send_msg(c, VSOCK_FEATURE_PROC, type, shape, msg, call);
        if (r < 0)
                return r;
        struct ext_proc_info info;
        r = client_ext_reply(c, call, EXT_MSG_PROC_INFO, &ext_proc_info_shape, &info);
        if (r < 0)
                return r;
        if (ret)
                info_take(&info, ret);
        ext_proc_info_clear(&info);
        return 0;
}

static bool valid_ref(uint64_t id, const char *tag) { return id != 0 || (tag && tag[0]); }

_public_ int vsock_proc_start(vsock_conn *c, const struct vsock_proc_spec *spec, struct vsock_call *call,
                              struct vsock_proc_info *ret) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !spec || !CLIENT_SIZE_KNOWN(spec) || !spec->req.command)
                return -EINVAL;
        const struct vsock_exec_request *q = &spec->req;
        struct ext_proc_start m;
        ext_proc_start_init(&m);
        m.command = (char *) q->command;
        m.args = q->args;
        m.n_args = q->n_args;
        m.working_dir = (char *) (q->working_dir && q->working_dir[0] ? q->working_dir : NULL);
        m.env = q->env;
        m.n_env = q->n_env;
        m.user = (char *) (q->user && q->user[0] ? q->user : NULL);
        m.tag = (char *) (spec->tag && spec->tag[0] ? spec->tag : NULL);
        m.tty = spec->tty;
        m.rows = q->rows;
        m.cols = q->cols;
        m.stdin_pipe = spec->stdin_pipe;
        m.ring = spec->ring;
        m.keep_s = spec->keep_s;
        return info_call(c, EXT_MSG_PROC_START, &ext_proc_start_shape, &m, call, ret);
}

_public_ int vsock_proc_list(vsock_conn *c, const char *tag, struct vsock_call *call, struct vsock_proc_info **ret,
                             size_t *ret_n) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !ret || !ret_n)
                return -EINVAL;
        struct ext_proc_list m = { .tag = (char *) (tag && tag[0] ? tag : NULL) };
        int r = client_ext_send_msg(c, VSOCK_FEATURE_PROC, EXT_MSG_PROC_LIST, &ext_proc_list_shape, &m, call);
        if (r < 0)
                return r;
        struct ext_proc_list_reply rep;
        r = client_ext_reply(c, call, EXT_MSG_PROC_LIST_REPLY, &ext_proc_list_reply_shape, &rep);
        if (r < 0)
                return r;
        struct vsock_proc_info *v = NULL;
        if (rep.n_procs > 0) {
                v = calloc(rep.n_procs, sizeof *v);
                if (!v) {
                        ext_proc_list_reply_clear(&rep);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < rep.n_procs; i++)
                        info_take(&rep.procs[i], &v[i]);
        }
        *ret_n = rep.n_procs;
        *ret = v;
        ext_proc_list_reply_clear(&rep);
        return 0;
}

_public_ int vsock_proc_attach(vsock_conn *c, uint64_t id, const char *tag, const struct vsock_proc_attach_opts *opts,
                               const struct vsock_exec_io *io, struct vsock_call *call,
                               struct vsock_proc_info *ret_info, struct vsock_proc_end *ret_end) {
        static const struct vsock_proc_attach_opts defaults = { 0 };
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call)
                return -EINVAL;
        if (!opts)
                opts = &defaults;
        if (!c || !CLIENT_SIZE_KNOWN(opts) || !valid_ref(id, tag) || opts->offset < -1)
                return -EINVAL;
        struct ext_proc_attach m;
        ext_proc_attach_init(&m);
        m.id = id;
        m.tag = id ? NULL : (char *) tag;
        m.offset = opts->offset;
        m.follow = !opts->no_follow;
        m.input = opts->input;
        int r = client_ext_send_msg(c, VSOCK_FEATURE_PROC, EXT_MSG_PROC_ATTACH, &ext_proc_attach_shape, &m, call);
        if (r < 0)
                return r;
        struct ext_proc_info info;
        r = client_ext_reply(c, call, EXT_MSG_PROC_INFO, &ext_proc_info_shape, &info);
        if (r < 0)
                return client_fail(c, r); /* an attach's connection is never reused */
        struct client_attach a = {
                .input = opts->input,
                .tty = info.tty,
                .on_gap = opts->on_gap,
                .offset = opts->offset == -1 ? info.out_end : (uint64_t) opts->offset,
        };
        if (ret_info)
                info_take(&info, ret_info);
        ext_proc_info_clear(&info);
        r = client_attach_run(c, io, call, &a);
        if (r >= 0 && ret_end)
                end_from_wire(&a.end, ret_end);
        ext_proc_end_clear(&a.end);
        if (r < 0 && ret_info)
                vsock_proc_info_clear(ret_info);
        return client_fail(c, r);
}

_public_ int vsock_proc_control(vsock_conn *c, uint64_t id, const char *tag, const struct vsock_proc_control *ctl,
                                struct vsock_call *call, struct vsock_proc_info *ret) {
        static const char *const ops[] = {
                [VSOCK_PROC_STDIN] = "stdin",
                [VSOCK_PROC_CLOSE_STDIN] = "close-stdin",
                [VSOCK_PROC_SIGNAL] = "signal",
                [VSOCK_PROC_RESIZE] = "resize",
                [VSOCK_PROC_REMOVE] = "remove",
        };
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !ctl || !CLIENT_SIZE_KNOWN(ctl) || !valid_ref(id, tag) || ctl->op < VSOCK_PROC_STDIN ||
            ctl->op > VSOCK_PROC_REMOVE || (ctl->len > 0 && !ctl->data))
                return -EINVAL;
        struct ext_proc_control m;
        ext_proc_control_init(&m);
        m.id = id;
        m.tag = id ? NULL : (char *) tag;
        m.op = (char *) ops[ctl->op];
        if (ctl->op == VSOCK_PROC_STDIN)
                m.data = (struct vsock_bytes) { (uint8_t *) ctl->data, ctl->len, ctl->len > 0 };
        m.signal = ctl->signal;
        m.rows = ctl->rows;
        m.cols = ctl->cols;
        return info_call(c, EXT_MSG_PROC_CONTROL, &ext_proc_control_shape, &m, call, ret);
}

_public_ int vsock_proc_wait(vsock_conn *c, uint64_t id, const char *tag, int64_t timeout_ms, struct vsock_call *call,
                             struct vsock_proc_end *ret) {
        struct vsock_call fallback;
        call = client_call_resolve(call, &fallback);
        if (!call || !c || !valid_ref(id, tag) || timeout_ms < 0)
                return -EINVAL;
        struct ext_proc_wait m = { .id = id, .tag = id ? NULL : (char *) tag, .timeout_ms = timeout_ms };
        int r = client_ext_send_msg(c, VSOCK_FEATURE_PROC, EXT_MSG_PROC_WAIT, &ext_proc_wait_shape, &m, call);
        if (r < 0)
                return r;
        struct ext_proc_end end;
        r = client_ext_reply(c, call, EXT_MSG_PROC_END, &ext_proc_end_shape, &end);
        if (r < 0)
                return r;
        if (ret)
                end_from_wire(&end, ret);
        ext_proc_end_clear(&end);
        return 0;
}
