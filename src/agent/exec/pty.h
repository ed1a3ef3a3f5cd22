/* Pseudo-terminals for ExecTTY. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

/* Open a master (O_CLOEXEC|O_NONBLOCK) and its slave (O_CLOEXEC|O_NOCTTY,
 * blocking) with the given size (0 keeps the kernel's default for that
 * dimension). */
int pty_open(uint16_t rows, uint16_t cols, int *ret_master, int *ret_slave);

/* Set the window size; the kernel sends SIGWINCH to the foreground group. */
int pty_resize(int master, uint16_t rows, uint16_t cols);

/* The terminal's foreground process group, or a negative errno. */
pid_t pty_foreground(int master);
