/* WriteFile, ReadFile, ListFiles: files_serve() runs on a worker thread;
 * its FileResult is sent when the job comes back to the loop, or an error
 * when it has not by the agent's I/O timeout (a file system that does not
 * answer: the thread is left to the kernel, the host is not). The reply is
 * encoded after room for the frame header and handed to the session as
 * its send queue, so a 20 MiB reply is neither copied nor wiped: neither
 * file contents nor paths are request secrets (env and stdin are). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vsock/frame.h>
#include <vsock/msg.h>

#include "agent/files/files.h"
#include "agent/ops.h"
#include "agent/serve/session.h"
#include "agent/serve/worker.h"
#include "common/buf.h"
#include "common/log.h"

/* The JSON of a full read: base64 of FILES_READ_MAX plus room for names. */
#define FILEOP_OUT_MAX ((size_t) FILES_READ_MAX / 3 * 4 + 64u * 1024 * 1024)

struct fileop {
        struct worker_job job;
        struct session *s;              /* NULL once the session is gone */
        uint8_t type;
        uint8_t *payload;
        uint32_t len;
        struct buf out;                 /* counted in the budget, strictly */
        size_t charge;                  /* the request payload's */
        struct budget *budget;
        int rc;
        bool running;
        bool answered;                  /* the timeout's error went out */
};

static void fileop_destroy(struct fileop *f) {
        free(f->payload);
        (void) budget_release(f->budget, f->charge);
        buf_free(&f->out);
        free(f);
}

int fileop_reply_begin(struct buf *out) {
        static const uint8_t header_room[VSOCK_FRAME_HEADER_SIZE];
        return buf_append(out, header_room, sizeof header_room);
}

void fileop_reply(struct session *s, struct buf *out, int rc) {
        if (rc < 0) {
                log_error("session %llu: file operation: %s", (unsigned long long) session_id(s), strerror(-rc));
                /* Still answer: the host should not wait for nothing. */
                buf_free(out);
                if (fileop_reply_begin(out) >= 0)
                        (void) files_write_reply(out, "agent out of memory");
        }
        int r = session_send_take(s, VSOCK_MSG_FILE_RESULT, out);
        if (r < 0)
                log_error("session %llu: file operation reply: %s", (unsigned long long) session_id(s), strerror(-r));
        session_finish(s);
}

static void reply_error(struct session *s, uint8_t type, const char *why);

static void fileop_run(struct worker_job *j) {
        struct fileop *f = container_of(j, struct fileop, job);
        f->rc = fileop_reply_begin(&f->out);
        if (f->rc >= 0) {
                static uint8_t empty[1];
                f->rc = files_serve(f->type, f->payload ? f->payload : empty, f->len, &f->out);
        }
        /* The request (up to 64 MiB for a write) is done with. */
        free(f->payload);
        f->payload = NULL;
        (void) budget_release(f->budget, f->charge);
        f->charge = 0;
}

static void fileop_done(struct worker_job *j) {
        struct fileop *f = container_of(j, struct fileop, job);
        f->running = false;
        if (!f->s) {
                fileop_destroy(f);
                return;
        }
        if (f->answered)
                return; /* the session frees us */
        if (j->cancelled)
                session_finish(f->s);
        else if (f->rc == -ENOBUFS) {
                /* The reply did not fit the memory budget (the only cap
                 * a read can reach: its size limit is checked first). */
                char why[128];
                snprintf(why, sizeof why, "%s (%zu MiB): the reply does not fit, try again later", AGENT_BUDGET_TEXT,
                         budget_limit(f->budget) >> 20);
                buf_free(&f->out);
                reply_error(f->s, f->type, why);
        } else
                fileop_reply(f->s, &f->out, f->rc);
}

static const char *op_name(uint8_t type) {
        return type == VSOCK_MSG_WRITE_FILE ? "write_file" : type == VSOCK_MSG_READ_FILE ? "read_file" : "list_files";
}

/* An error reply of its own (the worker may still own f->out). */
static void send_error(struct session *s, uint8_t type, const char *why) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s: %s", op_name(type), why);
        struct buf out = BUF_INIT(0);
        int r = fileop_reply_begin(&out);
        if (r >= 0)
                r = files_write_reply(&out, msg);
        if (r < 0) {
                buf_free(&out);
                return;
        }
        r = session_send_take(s, VSOCK_MSG_FILE_RESULT, &out);
        if (r < 0)
                log_error("session %llu: file operation reply: %s", (unsigned long long) session_id(s), strerror(-r));
}

/* Same, then the session finishes. */
static void reply_error(struct session *s, uint8_t type, const char *why) {
        send_error(s, type, why);
        session_finish(s);
}

void fileop_refuse(struct session *s, uint8_t type, const char *why) { send_error(s, type, why); }

static void fileop_timeout(struct worker_job *j) {
        struct fileop *f = container_of(j, struct fileop, job);
        if (!f->s)
                return;
        char why[128];
        snprintf(why, sizeof why, "gave up after %d s: the file system does not answer",
                 session_agent(f->s)->io_timeout_ms / 1000);
        f->answered = true;
        reply_error(f->s, f->type, why);
}

static void fileop_free(void *op) {
        struct fileop *f = op;
        if (!f)
                return;
        if (f->running) {
                f->s = NULL; /* the worker still has it; fileop_done frees */
                return;
        }
        fileop_destroy(f);
}

/* A host that goes away cannot stop a file operation already running;
 * its result is dropped. */
static void fileop_gone(void *op) {
        struct fileop *f = op;
        if (!f->running && f->s)
                session_finish(f->s);
}

static const struct session_ops fileop_ops = {
        .name = "file",
        .conn_lost = fileop_gone,
        .free = fileop_free,
};

int fileop_start(struct session *s, uint8_t type, uint8_t *payload, uint32_t len) {
        struct fileop *f = calloc(1, sizeof *f);
        if (!f) {
                free(payload);
                return -ENOMEM;
        }
        f->s = s;
        f->type = type;
        f->payload = payload;
        f->len = len;
        f->out = BUF_INIT(FILEOP_OUT_MAX);
        f->budget = &session_agent(s)->budget;
        buf_set_budget(&f->out, f->budget, true);
        f->charge = session_request_charge_take(s);
        f->job.run = fileop_run;
        f->job.done = fileop_done;
        f->job.timeout = fileop_timeout;
        int r = worker_submit(session_agent(s)->worker, &f->job);
        if (r < 0) {
                fileop_destroy(f);
                reply_error(s, type, r == -EBUSY ? WORKER_BUSY_TEXT : "agent out of resources: cannot start a thread");
                return 0;
        }
        f->running = true;
        session_set_op(s, &fileop_ops, f);
        return 0;
}
