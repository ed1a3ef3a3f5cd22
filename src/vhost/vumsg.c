#include "vhost/vumsg.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "common/macro.h"

/* The header is read straight into the three fields. */
_Static_assert(offsetof(struct vu_msg, flags) == 4 && offsetof(struct vu_msg, size) == 8, "vu_msg header layout");

void vu_reader_init(struct vu_reader *r) {
        r->have = 0;
        r->msg.n_fds = 0;
}

/* File descriptors from one recvmsg; any beyond the table are closed and
 * make the message a protocol error. */
static int take_fds(struct vu_msg *m, struct msghdr *mh) {
        int r = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                const unsigned char *data = CMSG_DATA(c);
                for (size_t i = 0; i < n; i++) {
                        int fd;
                        memcpy(&fd, data + i * sizeof fd, sizeof fd);
                        if (m->n_fds < VU_MAX_FDS)
                                m->fds[m->n_fds++] = fd;
                        else {
                                safe_close(fd);
                                r = -EPROTO;
                        }
                }
        }
        return r;
}

static int check_header(const struct vu_msg *m) {
        if ((m->flags & VU_VERSION_MASK) != VU_VERSION || m->size > VU_PAYLOAD_MAX)
                return -EPROTO;
        return 0;
}

int vu_reader_read(struct vu_reader *r, int fd) {
        struct vu_msg *m = &r->msg;
        for (;;) {
                uint8_t *dst;
                size_t want;
                if (r->have < VU_HDR_SIZE) {
                        dst = (uint8_t *) &m->request + r->have;
                        want = VU_HDR_SIZE - r->have;
                } else {
                        size_t got = r->have - VU_HDR_SIZE;
                        if (got == m->size)
                                return 1;
                        dst = m->payload + got;
                        want = m->size - got;
                }
                /* Room for more descriptors than allowed, to see them. */
                union {
                        char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS * 2)];
                        struct cmsghdr align;
                } control;
                struct iovec iov = { .iov_base = dst, .iov_len = want };
                struct msghdr mh = {
                        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf,
                };
                ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN ? 0 : -errno;
                }
                int e = take_fds(m, &mh);
                if (e < 0 || (mh.msg_flags & MSG_CTRUNC))
                        return -EPROTO;
                if (n == 0)
                        return -ECONNRESET;
                r->have += (size_t) n;
                if (r->have == VU_HDR_SIZE && check_header(m) < 0)
                        return -EPROTO;
        }
}

void vu_reader_next(struct vu_reader *r) {
        for (unsigned i = 0; i < r->msg.n_fds; i++)
                safe_close(r->msg.fds[i]);
        vu_reader_init(r);
}

int vu_msg_take_fd(struct vu_msg *m) {
        if (m->n_fds != 1)
                return -1;
        return TAKE_FD(m->fds[0]);
}

size_t vu_reply_frame(uint32_t request, const void *payload, uint32_t size, uint8_t *out) {
        uint32_t hdr[3] = { request, VU_VERSION | VU_FLAG_REPLY, size };
        memcpy(out, hdr, VU_HDR_SIZE);
        if (size)
                memcpy(out + VU_HDR_SIZE, payload, size);
        return VU_HDR_SIZE + size;
}
