#include "flow.h"

#include <errno.h>

int flow_send_init(struct flow_send *f, uint32_t window, uint64_t credit_max, uint32_t data_max) {
        if (data_max == 0 || credit_max < window)
                return -EINVAL;
        *f = (struct flow_send) { .credit = window, .credit_max = credit_max, .data_max = data_max };
        return 0;
}

int flow_send_credit(struct flow_send *f, uint32_t n) {
        if (n == 0 || f->ended || f->credit + n > f->credit_max)
                return -EPROTO;
        f->credit += n;
        return 0;
}

size_t flow_send_room(const struct flow_send *f) {
        if (f->ended)
                return 0;
        return f->credit < f->data_max ? (size_t) f->credit : f->data_max;
}

int flow_send_sent(struct flow_send *f, size_t n) {
        if (f->ended || n > flow_send_room(f))
                return -EINVAL;
        if (n == 0)
                f->ended = true;
        f->credit -= n;
        f->sent += n;
        return 0;
}

int flow_recv_init(struct flow_recv *f, uint32_t window, uint32_t data_max) {
        if (window == 0 || data_max == 0)
                return -EINVAL;
        *f = (struct flow_recv) { .window = window, .data_max = data_max, .outstanding = window };
        return 0;
}

int flow_recv_data(struct flow_recv *f, size_t n) {
        if (f->ended || n > f->data_max || n > f->outstanding)
                return -EPROTO;
        if (n == 0)
                f->ended = true;
        f->outstanding -= n;
        f->received += n;
        return 0;
}

uint32_t flow_recv_consumed(struct flow_recv *f, size_t n) {
        /* Only bytes that came can go: a caller bug must not inflate the
         * window (outstanding + unacked never exceeds it). */
        uint64_t most = f->window - f->outstanding - f->unacked;
        f->unacked += n < most ? n : most;
        if (f->ended || f->unacked == 0 || f->unacked < f->window / 2)
                return 0;
        uint32_t grant = (uint32_t) f->unacked;
        f->unacked = 0;
        f->outstanding += grant;
        return grant;
}
