/* Extension requests answered by one frame after blocking work (ext.h):
 * the same life as fileop.c's, with Error frames for failures. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vsock/frame.h>

#include "agent/agent.h"
#include "agent/serve/ext.h"
#include "agent/serve/session.h"
#include "agent/serve/worker.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/macro.h"

/* A ListReply's bytes at most, plus room for the header and slack. */
#define EXT_JOB_FRAME_MAX (EXT_LIMIT_LIST_REPLY_MAX + 64u * 1024)

struct ext_job {
        struct worker_job job;
        struct session *s;              /* NULL once the session is gone */
        const char *name;
        ext_work_fn work;
        uint8_t *payload;
        uint32_t len;
        struct ext_reply reply;
        bool running;
        bool answered;                  /* the timeout's Error went out */
};

void ext_reply_fail(struct ext_reply *r, const char *code, int err, const char *fmt, ...) {
        r->type = 0;
        buf_free(&r->frame);
        r->code = code;
        r->err = err < 0 ? -err : err;
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(r->message, sizeof r->message, fmt, ap);
        va_end(ap);
}

static void job_destroy(struct ext_job *j) {
        free(j->payload);
        buf_free(&j->reply.frame);
        free(j);
}

static void job_run(struct worker_job *wj) {
        struct ext_job *j = container_of(wj, struct ext_job, job);
        static const uint8_t header_room[VSOCK_FRAME_HEADER_SIZE];
        if (buf_append(&j->reply.frame, header_room, sizeof header_room) < 0)
                ext_reply_fail(&j->reply, NULL, ENOMEM, "%s: agent out of memory", j->name);
        else
                j->work(j->payload ? j->payload : (const uint8_t *) "", j->len, &j->reply);
        free(j->payload);
        j->payload = NULL;
}

/* Send the reply (or its Error) and end the request. */
static void job_answer(struct session *s, struct ext_job *j) {
        struct ext_reply *r = &j->reply;
        if (r->type == 0) {
                ext_error_finish(s, r->code, r->err, NULL, "%s", r->message);
                return;
        }
        int rc = session_send_take(s, r->type, &r->frame);
        if (rc < 0) {
                log_error("session %llu: %s reply: %s", (unsigned long long) session_id(s), j->name, strerror(-rc));
                ext_error_finish(s, NULL, -rc, NULL, "%s: cannot send the reply: %s", j->name, strerror(-rc));
                return;
        }
        session_finish(s);
}

static void job_done(struct worker_job *wj) {
        struct ext_job *j = container_of(wj, struct ext_job, job);
        j->running = false;
        if (!j->s) {
                job_destroy(j);
                return;
        }
        if (j->answered)
                return; /* the session frees us */
        if (wj->cancelled)
                ext_error_finish(j->s, NULL, ECANCELED, NULL, "%s: cancelled", j->name);
        else
                job_answer(j->s, j);
}

static void job_timeout(struct worker_job *wj) {
        struct ext_job *j = container_of(wj, struct ext_job, job);
        if (!j->s)
                return;
        j->answered = true;
        ext_error_finish(j->s, NULL, ETIMEDOUT, NULL, "%s: gave up after %d s: the file system does not answer",
                         j->name, session_agent(j->s)->io_timeout_ms / 1000);
}

static void job_free(void *op) {
        struct ext_job *j = op;
        if (!j)
                return;
        if (j->running) {
                j->s = NULL; /* the worker still has it; job_done frees */
                return;
        }
        job_destroy(j);
}

/* A host that goes away cannot stop work already running; its result is
 * dropped. */
static void job_gone(void *op) {
        struct ext_job *j = op;
        if (!j->running && j->s)
                session_finish(j->s);
}

static const struct session_ops ext_job_ops = {
        .name = "ext-job",
        .conn_lost = job_gone,
        .free = job_free,
};

int ext_job_start(struct session *s, const char *name, uint8_t *payload, uint32_t len, ext_work_fn work) {
        struct ext_job *j = calloc(1, sizeof *j);
        if (!j) {
                free(payload);
                return -ENOMEM;
        }
        j->s = s;
        j->name = name;
        j->work = work;
        j->payload = payload;
        j->len = len;
        j->reply.frame = BUF_INIT(EXT_JOB_FRAME_MAX);
        j->job.run = job_run;
        j->job.done = job_done;
        j->job.timeout = job_timeout;
        int r = worker_submit(session_agent(s)->worker, &j->job);
        if (r < 0) {
                job_destroy(j);
                if (r == -EBUSY)
                        ext_error_finish(s, "EBUSY", EBUSY, NULL, "%s: %s", name, WORKER_BUSY_TEXT);
                else
                        ext_error_finish(s, "EAGAIN", EAGAIN, NULL, "%s: agent out of resources: cannot start a thread",
                                         name);
                return 0;
        }
        j->running = true;
        session_set_op(s, &ext_job_ops, j);
        return 0;
}
