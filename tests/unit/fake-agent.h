/* A scripted guest agent for client tests: a thread that serves one
 * connection (a socketpair or one accepted on a unix socket) by running a
 * script of expect/send steps on a plain blocking fd, independent of the
 * library's own framing code.
 *
 * Every wait is bounded (FA_TIMEOUT_MS), so a client bug fails a test
 * instead of hanging it. cmocka assertions must not run off the main
 * thread, so steps record the first failure and the test checks it after
 * fake_agent_join(). */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vsock/conn.h"

#define FA_TIMEOUT_MS 10000

struct fake_agent;
typedef void (*fake_script)(struct fake_agent *fa);

struct fake_agent {
        pthread_t thread;
        int fd;         /* the agent's end; -1 until accepted */
        int listen_fd;  /* unix mode only */
        int accept_delay_ms; /* unix mode: create the listener only after this long */
        char path[108];
        fake_script script;
        void *arg;
        bool saw_eof;   /* fa_expect_eof() reached EOF */
        char failure[512];
};

/* Start on a socketpair; *ret_client wraps the other end. */
int fake_agent_start_pair(struct fake_agent *fa, fake_script script, void *arg, vsock_conn **ret_client);

/* Serve one connection accepted on unix socket @path. With
 * accept_delay_ms == 0 the socket is listening when this returns; otherwise
 * the thread creates it after that delay (to test waiting for readiness).
 * A NULL script just accepts and closes. */
int fake_agent_start_unix(struct fake_agent *fa, const char *path, int accept_delay_ms, fake_script script,
                          void *arg);

/* Wait for the thread; returns NULL or the first failure. */
const char *fake_agent_join(struct fake_agent *fa);

/* ---- script steps: each returns false (and records why) on failure ---- */
void fa_fail(struct fake_agent *fa, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool fa_read_frame(struct fake_agent *fa, uint8_t *ret_type, uint8_t **ret_payload, uint32_t *ret_len);
bool fa_expect_frame(struct fake_agent *fa, uint8_t type, const void *payload, size_t len);
/* The whole frame (header included) as lowercase hex, e.g. from a vector. */
bool fa_expect_frame_hex(struct fake_agent *fa, const char *hex);
bool fa_send(struct fake_agent *fa, uint8_t type, const void *payload, size_t len);
bool fa_send_raw(struct fake_agent *fa, const void *data, size_t len);
bool fa_send_hex(struct fake_agent *fa, const char *hex);
bool fa_read_raw(struct fake_agent *fa, void *buf, size_t n);
/* Read and discard until EOF (sets saw_eof). */
bool fa_expect_eof(struct fake_agent *fa);

/* Hex to bytes (malloc'd); returns the length or -1. */
ssize_t hex_decode(const char *hex, uint8_t **ret);
