/* Transparent huge pages for large fresh buffers.
 *
 * A large malloc block is a fresh mapping (the agent fixes malloc's mmap
 * threshold so big blocks go back to the kernel when freed), and faulting
 * it in 4 KiB at a time costs more than filling it: ~0.8 ms per MiB in a
 * VM, against ~0.1 ms per MiB with 2 MiB pages. On kernels where THP is
 * "madvise" (the usual default) only advised ranges get huge pages. */
#pragma once

#include <stddef.h>

/* Below this a buffer is not worth advising. */
#define HUGE_ADVICE_MIN (2u * 1024 * 1024)

/* Advise MADV_HUGEPAGE for the whole pages of @p[0..n) when n >=
 * HUGE_ADVICE_MIN. Call before the memory is first touched. Advice only:
 * any failure is ignored. */
void huge_advise(void *p, size_t n);
