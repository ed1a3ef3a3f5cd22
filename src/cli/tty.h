/* The local terminal: raw mode on and off, and its size. This is the only
 * code in vsockctl that touches termios. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Save @fd's settings and switch it to raw mode (no echo, no line editing,
 * no signal keys, no output processing), so every key, ^C included, goes
 * to the remote terminal. Registers tty_restore() with atexit() the first
 * time. Returns 0 or -errno (nothing changed then). */
int tty_raw_enter(int fd);

/* Put the saved settings back if raw mode is on; otherwise do nothing.
 * Idempotent and async-signal-safe (tcsetattr only), so signal handlers
 * may call it. */
void tty_restore(void);

/* True while raw mode is on. */
bool tty_is_raw(void);

/* The window size of @fd (TIOCGWINSZ). Async-signal-safe. Returns 0 or
 * -errno; a size of 0x0 is reported as -ENOTTY (a pty nobody sized). */
int tty_get_size(int fd, uint16_t *ret_rows, uint16_t *ret_cols);
