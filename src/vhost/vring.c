#include "vhost/vring.h"

#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/io.h"
#include "common/macro.h"

static void eventfd_signal(int fd) {
        uint64_t one = 1;
        /* An eventfd write fails only when its counter would overflow, and
         * then the other side has a wakeup pending anyway. */
        (void) !write(fd, &one, sizeof one);
}

static void on_kick(struct watcher *w, uint32_t revents) {
        struct vring *r = container_of(w, struct vring, kick);
        uint64_t v;
        /* Drain the counter; whatever the front-end handed us (an eventfd,
         * or a pipe from a hostile one) is non-blocking, so this ends. */
        for (int i = 0; i < 64 && io_read_once(w->fd, &v, sizeof v) > 0; i++)
                ;
        if (revents & (EPOLLERR | EPOLLHUP)) {
                /* Not an eventfd after all, and a dead one: stop watching
                 * rather than wake up forever. */
                (void) watcher_set(w, 0);
                return;
        }
        if (r->started && r->on_kick)
                r->on_kick(r, r->userdata);
}

void vring_init(struct vring *r, struct loop *l, unsigned index, vring_kick_fn fn, void *userdata) {
        *r = (struct vring) { .index = index, .call_fd = -1, .err_fd = -1, .on_kick = fn, .userdata = userdata };
        watcher_init(&r->kick, l, -1, on_kick);
}

static void kick_close(struct vring *r) {
        int fd = r->kick.fd;
        watcher_stop(&r->kick);
        safe_close(fd);
}

int vring_set_kick(struct vring *r, int fd) {
        kick_close(r);
        int e = fd_set_nonblock(fd, 1);
        if (e < 0) {
                safe_close(fd);
                return e;
        }
        struct loop *l = r->kick.loop;
        watcher_init(&r->kick, l, fd, on_kick);
        e = watcher_set(&r->kick, EPOLLIN);
        if (e < 0) {
                kick_close(r);
                return e;
        }
        r->started = true;
        return 0;
}

void vring_set_call(struct vring *r, int fd) {
        safe_close(r->call_fd);
        r->call_fd = fd;
}

void vring_set_err(struct vring *r, int fd) {
        safe_close(r->err_fd);
        r->err_fd = fd;
}

void vring_stop(struct vring *r) {
        kick_close(r);
        r->call_fd = safe_close(r->call_fd);
        r->err_fd = safe_close(r->err_fd);
        r->started = false;
        r->call_owed = false;
}

void vring_close(struct vring *r) {
        vring_stop(r);
        r->enabled = false;
        virtq_reset(&r->q);
}

void vring_flush_call(struct vring *r) {
        if (!r->call_owed)
                return;
        r->call_owed = false;
        if (r->call_fd >= 0 && virtq_should_notify(&r->q))
                eventfd_signal(r->call_fd);
}

void vring_signal_err(struct vring *r) {
        if (r->err_fd >= 0)
                eventfd_signal(r->err_fd);
}
