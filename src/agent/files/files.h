/* The file operations of the exec service (WriteFile, ReadFile, ListFiles).
 *
 * files_serve() is a pure, blocking, thread-safe function: it decodes the
 * request payload, performs the operation and appends the FileResult JSON
 * (a FileResponse) to @out. Every failure, including a malformed request,
 * becomes the response's "error" field, so the function itself fails only
 * on allocation errors (-ENOMEM, -ENOBUFS from @out's cap). The agent may
 * run it on a worker thread so a slow disk never stalls the event loop. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>
#include <stdint.h>

#include "common/buf.h"

#define FILES_READ_MAX (16u * 1024 * 1024)

/* ListFiles replies stay under this much JSON (half the frame limit that
 * hosts accept): a bigger directory gets an error instead. */
#define FILES_LIST_MAX (32u * 1024 * 1024)

/* ---- WriteFile in steps --------------------------------------------------
 * files_serve() does all of them at once; a request that arrives over time
 * (wfstream.h) runs them as the content comes in. All are blocking (worker
 * thread). Each returns 0, or -ENOMEM; a failure to report sets *err (a
 * Go-style "OP PATH: reason") and returns 0. After a failure, call
 * files_write_abort().
 *
 * An existing target must be a regular file (or a symbolic link, which is
 * replaced, not followed): a device, FIFO, socket or directory is refused,
 * never replaced. A regular file on a kernel file system (/proc, /sys,
 * cgroups, ...), where no temporary file can be made, is written in place
 * instead, its mode and owner unchanged. */
struct files_writer {
        char *path, *dir;
        char *tmp;                      /* the temporary file until renamed */
        int fd;
        /* The outermost directory begin made is dir[0..created_len) (0:
         * none): every one made is that or inside it. */
        size_t created_len;
        bool in_place;                  /* writing the target itself */
        int error;                      /* the errno behind the last *err, for callers that report it */
};

void files_writer_init(struct files_writer *w);
/* Check @path (absolute, not a directory name, not a special file), make
 * its missing parent directories (as mkdir -p) and a temporary file beside
 * it. */
int files_write_begin(struct files_writer *w, const char *path, char **err);
/* Options of files_write_begin_opts() (FilePut, fileput.c). */
struct files_write_opts {
        /* The temporary file's name in the target's directory (a resumable
         * upload's partial), instead of a unique one. */
        const char *partial;
        bool resume;            /* continue an existing @partial (else truncate it) */
        unsigned keep_s;        /* a @partial older than this starts again (0: any age) */
        bool no_in_place;       /* refuse to write a kernel file system's file in place */
};
/* files_write_begin() with options (@o may be NULL). With @o->partial the
 * file is open for appending at its end (its size: fstat(w->fd)). */
int files_write_begin_opts(struct files_writer *w, const char *path, const struct files_write_opts *o, char **err);
int files_write_data(struct files_writer *w, const void *data, size_t n, char **err);
/* mkdir -p of @dir (absolute), as for a file's parents (TarPut's root).
 * The directories made are recorded in @w (its dir is set to @dir when
 * unset), for files_write_abort(). */
int files_mkdirs(struct files_writer *w, const char *dir, char **err);
/* Give the file @go_mode (an os.FileMode; 0: the replaced file's mode, or
 * 0644 for a new file) and the owner of the file it replaces, sync it and
 * rename it over the target. */
int files_write_commit(struct files_writer *w, uint32_t go_mode, char **err);
/* What files_write_commit_attrs() gives the file. */
struct files_attrs {
        mode_t mode;            /* permission and setuid/setgid/sticky bits */
        bool keep_mode;         /* the replaced regular file's mode instead, if any */
        bool keep_owner;        /* the replaced regular file's owner (best effort) */
        int64_t uid, gid;       /* >= 0: chown to it (failure is an error) */
        bool has_mtime;
        struct timespec mtime;
};
int files_write_commit_attrs(struct files_writer *w, const struct files_attrs *a, char **err);
/* A resumable upload's connection broke: sync and keep the temporary file
 * (and the directories made for it), then free as files_writer_clear(). */
void files_write_keep(struct files_writer *w);
/* Undo: remove the temporary file and the directories begin made (those
 * still empty). Then free, as files_writer_clear(). A write in place cannot
 * be undone. */
void files_write_abort(struct files_writer *w);
/* Free; an unfinished write is aborted. */
void files_writer_clear(struct files_writer *w);

/* Append the FileResult JSON of a write: {} or {"error":@err}. */
int files_write_reply(struct buf *out, const char *err);

/* @type is VSOCK_MSG_WRITE_FILE, VSOCK_MSG_READ_FILE or VSOCK_MSG_LIST_FILES.
 * @payload is the request frame's, and is consumed: WriteFile decodes the
 * file's base64 in place over it, so the caller must not use it again. */
int files_serve(uint8_t type, void *payload, size_t len, struct buf *out);
