/* POSIX pax/ustar archives as streams (PROTOCOL.md 2.6: TarGet, TarPut;
 * `vsockctl cp -r`), the pure half: the entry description, a writer that
 * turns entries into archive bytes, and a push parser that turns archive
 * bytes (in any split) back into entries and content. Neither touches a
 * file system; tar_fs.h drives them from and into directory trees.
 *
 * Both work in bounded steps on the caller's buffers, so an event loop or
 * a worker thread can interleave them with I/O: the writer hands out
 * header bytes and asks the caller to put each file's content in place
 * itself; the parser hands out content as slices of the caller's input.
 * Memory is bounded whatever the archive's size: a header block, the
 * longest name and link target (TAR_NAME_MAX), and a pax header of at most
 * TAR_PAX_MAX bytes.
 *
 * Archives written: ustar headers, with a pax extended header ('x') before
 * an entry whose name or link name does not fit ustar, whose size is 8 GiB
 * or more, whose uid/gid exceed 2097151, whose mtime has nanoseconds or
 * does not fit, or whose user/group name is longer than 31 bytes; numbers
 * that overflow their octal field are also written in base-256, as GNU
 * tar does. Two zero blocks end the archive.
 *
 * Archives read: POSIX ustar/pax and GNU (long names 'L'/'K', base-256
 * numbers), strictly: header checksums, octal and base-256 fields, pax
 * records (length-prefixed, bounded, known keys checked), names (relative,
 * no "..", bounded; "./" and repeated '/' folded), link names, sizes. GNU
 * sparse and multi-volume entries are refused (-EOPNOTSUPP); pax global
 * headers ('g') are checked and ignored. Errors: -EBADMSG for a malformed
 * or truncated archive, -EINVAL for an unsafe name, -ENAMETOOLONG, -E2BIG
 * for a pax header over TAR_PAX_MAX, -EOPNOTSUPP; the parser's error text
 * says what and at which offset. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TAR_BLOCK 512
/* Longest entry name and link target (bytes, without the NUL): PATH_MAX. */
#define TAR_NAME_MAX 4095
/* Longest path component: NAME_MAX. */
#define TAR_COMPONENT_MAX 255
/* Longest user/group name. */
#define TAR_OWNER_MAX 255
/* Largest pax extended header (its records) the parser accepts. */
#define TAR_PAX_MAX (64 * 1024)

enum tar_type {
        TAR_FILE,
        TAR_DIR,
        TAR_SYMLINK,
        TAR_HARDLINK,
        TAR_CHAR,
        TAR_BLOCK_DEV,
        TAR_FIFO,
        TAR_OTHER, /* a typeflag this code does not know: its content is skipped */
};

struct tar_entry {
        enum tar_type type;
        /* Relative, '/'-separated, no "." or ".." components, no trailing
         * '/'; "." is the archive's root directory itself. */
        const char *name;
        /* Symlink target (any text) or hard link target (a name as above);
         * NULL for other types. */
        const char *link;
        uint64_t size;   /* content bytes that follow (TAR_FILE, TAR_OTHER) */
        uint32_t mode;   /* permission bits, 07777 */
        uint32_t uid, gid;
        const char *uname, *gname; /* NULL or "" when unknown */
        int64_t mtime;   /* seconds since the epoch */
        uint32_t mtime_nsec;
        uint32_t devmajor, devminor;
};

/* Check and normalise an entry name: relative, no ".." component, no
 * NUL, at most TAR_NAME_MAX bytes with components of at most
 * TAR_COMPONENT_MAX; "." components, repeated and trailing '/' are
 * dropped; a name that is only "." components becomes ".". @out must hold
 * @len + 2 bytes. Returns the normalised length, -EINVAL (empty, absolute,
 * "..", NUL) or -ENAMETOOLONG. */
int tar_name_clean(const char *name, size_t len, char *out);

/* ---- writer ------------------------------------------------------------------------ */

struct tar_writer;

int tar_writer_new(struct tar_writer **ret);
void tar_writer_free(struct tar_writer *w);

/* Queue the header(s) of @e. For a TAR_FILE, e->size content bytes must
 * then be put into the archive by the caller (tar_writer_content_due,
 * tar_writer_content_done); other types carry none (their size is
 * ignored). The entry is checked: its name and a hard link's target with
 * tar_name_clean() rules (the name is written normalised, a directory with
 * a trailing '/'), a symlink target non-empty and at most TAR_NAME_MAX
 * bytes. Returns 0, -EBUSY (the previous entry's content or header bytes
 * are still due), -EINVAL, -ENAMETOOLONG, -EOVERFLOW (device numbers that
 * fit no field), -ENOMEM. */
int tar_writer_add(struct tar_writer *w, const struct tar_entry *e);

/* Copy up to @n queued archive bytes (headers, padding, the end blocks)
 * to @out. Stops where content is due or the queue is empty; returns the
 * count. */
size_t tar_writer_read(struct tar_writer *w, uint8_t *out, size_t n);

/* Content bytes the current entry still needs, once tar_writer_read()
 * has returned everything before them. 0 when none is due. */
uint64_t tar_writer_content_due(const struct tar_writer *w);

/* The caller placed @n content bytes in the archive, right after what
 * tar_writer_read() returned. Returns 0, or -EINVAL when @n exceeds what
 * is due (or header bytes are still queued). */
int tar_writer_content_done(struct tar_writer *w, uint64_t n);

/* Queue the end of the archive (two zero blocks). -EBUSY while content is
 * due; idempotent. */
int tar_writer_finish(struct tar_writer *w);

/* True once finished and every byte was read. */
bool tar_writer_done(const struct tar_writer *w);

/* ---- parser ----------------------------------------------------------------------------- */

struct tar_parser;

enum tar_event {
        TAR_EV_MORE,  /* all input consumed: feed more */
        TAR_EV_ENTRY, /* an entry's header: tar_parser_entry() */
        TAR_EV_DATA,  /* content of the current entry in *ret_data */
        TAR_EV_END,   /* the two end blocks were read */
};

int tar_parser_new(struct tar_parser **ret);
void tar_parser_free(struct tar_parser *p);

/* Consume a prefix of @data[0..len) and report what it completed: returns
 * an enum tar_event (>= 0) with the bytes used in *ret_used (> 0 unless
 * @len is 0), or a negative error (sticky: every later call returns it).
 * TAR_EV_DATA points *ret_data / *ret_len into @data: a piece of the
 * current entry's content (pieces follow the input's split; an entry
 * without content has none). After TAR_EV_END only zero bytes (a tar
 * record's padding) are accepted. */
int tar_parser_feed(struct tar_parser *p, const uint8_t *data, size_t len, size_t *ret_used,
                    const uint8_t **ret_data, size_t *ret_len);

/* The entry of the last TAR_EV_ENTRY, valid until the next feed that
 * returns TAR_EV_ENTRY or TAR_EV_END. */
const struct tar_entry *tar_parser_entry(const struct tar_parser *p);

/* The input ended: 0 when the archive was complete (TAR_EV_END seen),
 * else -EBADMSG ("truncated"), or the sticky error. */
int tar_parser_finish(struct tar_parser *p);

/* Why the last call failed ("" if it did not). */
const char *tar_parser_error(const struct tar_parser *p);

/* Archive bytes consumed so far. */
uint64_t tar_parser_offset(const struct tar_parser *p);
