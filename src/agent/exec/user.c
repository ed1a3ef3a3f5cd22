/* Resolving exec requests' "user" field from the guest's own passwd/group
 * files. The agent is linked statically, so getpwnam() (NSS) is not an
 * option; the files are parsed here, in the classic colon format only.
 *
 * Accepted specs: "uid", "uid:gid", "name", "name:group", "uid:group",
 * "name:gid". A user part made only of digits is always a uid, even if a
 * passwd entry happens to be named like a number (as runc/Docker do).
 *
 * Choices (see also user.h):
 * - A numeric uid found in passwd takes name, home, shell and primary gid
 *   from its first entry. A numeric uid *not* in passwd is still accepted
 *   (the reference agent uses numeric values as given): name is the number,
 *   home is "/", shell is "/bin/sh", and without ":gid" the primary gid is
 *   the uid itself -- never 0, so an unknown user cannot silently end up in
 *   the root group.
 * - An explicit ":group" replaces the passwd primary gid.
 * - Supplementary groups: every group whose member list names the user
 *   (only when the user has a passwd name), plus the primary gid; sorted,
 *   without duplicates. At most USER_GROUPS_MAX (the kernel's NGROUPS_MAX).
 * - Missing or unreadable files only matter when a name must be looked up;
 *   numeric specs still resolve. Malformed lines (wrong field count, bad
 *   numbers, empty names, NIS "+"/"-" entries, embedded NULs) and '#'
 *   comments are skipped. Lines may be of any length (getline).
 * - uid/gid 4294967295 ((uid_t) -1) is rejected: set*id() treat it as
 *   "leave unchanged". */
#include "user.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/errtext.h"
#include "common/macro.h"

#define USER_GROUPS_MAX 65536u
/* Keeps error messages bounded when a peer sends a huge spec. */
#define SPEC_QUOTE_MAX 128

static inline void fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}

/* Decimal id, digits only, no sign, no leading/trailing junk. */
static int parse_id(const char *s, uint32_t *ret) {
        uint64_t v = 0;
        if (!*s)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t) (*p - '0');
                if (v >= UINT32_MAX) /* also rejects (uid_t) -1 */
                        return -ERANGE;
        }
        *ret = (uint32_t) v;
        return 0;
}

static bool is_all_digits(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

/* Splits @line in place at ':' into exactly @n fields. */
static int split_fields(char *line, char **fields, size_t n) {
        size_t i = 0;
        char *p = line;
        for (;;) {
                if (i == n)
                        return -EINVAL;
                fields[i++] = p;
                char *c = strchr(p, ':');
                if (!c)
                        break;
                *c = '\0';
                p = c + 1;
        }
        return i == n ? 0 : -EINVAL;
}

/* Reads the next line that is neither empty nor a comment, without its
 * line ending. Returns 1, 0 at EOF, or -errno. */
static int next_line(FILE *f, char **line, size_t *size) {
        for (;;) {
                errno = 0;
                ssize_t n = getline(line, size, f);
                if (n < 0)
                        return errno == 0 || feof(f) ? 0 : -errno;
                if ((size_t) n != strlen(*line))
                        continue; /* embedded NUL: never a valid entry */
                while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r'))
                        (*line)[--n] = '\0';
                if (n == 0 || (*line)[0] == '#')
                        continue;
                return 1;
        }
}

static bool valid_name(const char *s) {
        /* "+"/"-" lines are NIS compat entries, not users or groups. */
        return *s && *s != '+' && *s != '-';
}

struct pw_entry {
        const char *name;
        uint32_t uid, gid;
        const char *home, *shell;
};

static bool parse_passwd_line(char *line, struct pw_entry *ret) {
        char *f[7];
        if (split_fields(line, f, 7) < 0 || !valid_name(f[0]))
                return false;
        if (parse_id(f[2], &ret->uid) < 0 || parse_id(f[3], &ret->gid) < 0)
                return false;
        ret->name = f[0];
        ret->home = f[5];
        ret->shell = f[6];
        return true;
}

struct gr_entry {
        const char *name;
        uint32_t gid;
        char *members; /* comma-separated */
};

static bool parse_group_line(char *line, struct gr_entry *ret) {
        char *f[4];
        if (split_fields(line, f, 4) < 0 || !valid_name(f[0]))
                return false;
        if (parse_id(f[2], &ret->gid) < 0)
                return false;
        ret->name = f[0];
        ret->members = f[3];
        return true;
}

static bool members_contain(const char *members, const char *name) {
        size_t len = strlen(name);
        for (const char *p = members; *p;) {
                const char *e = strchrnul(p, ',');
                if ((size_t) (e - p) == len && memcmp(p, name, len) == 0)
                        return true;
                p = *e ? e + 1 : e;
        }
        return false;
}

/* Finds the first passwd entry by @name or, if @name is NULL, by @uid and
 * copies name, home and shell into @ret. Returns 1 found, 0 not found,
 * -errno if the file cannot be read (or -ENOMEM). */
static int passwd_find(const char *path, const char *name, uint32_t uid, struct user_spec *ret) {
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        int r;

        if (!f)
                return -errno;
        while ((r = next_line(f, &line, &size)) > 0) {
                struct pw_entry e;
                if (!parse_passwd_line(line, &e))
                        continue;
                if (name ? strcmp(e.name, name) != 0 : e.uid != uid)
                        continue;
                char *n = strdup(e.name), *h = strdup(*e.home ? e.home : "/"),
                     *s = strdup(*e.shell ? e.shell : "/bin/sh");
                if (!n || !h || !s) {
                        free(n);
                        free(h);
                        free(s);
                        return -ENOMEM;
                }
                ret->uid = e.uid;
                ret->gid = e.gid;
                ret->name = n;
                ret->home = h;
                ret->shell = s;
                return 1;
        }
        return r;
}

/* Returns 1 and the gid of the first group called @name, 0 if none,
 * -errno if the file cannot be read. */
static int group_find(const char *path, const char *name, uint32_t *ret_gid) {
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        int r;

        if (!f)
                return -errno;
        while ((r = next_line(f, &line, &size)) > 0) {
                struct gr_entry e;
                if (parse_group_line(line, &e) && strcmp(e.name, name) == 0) {
                        *ret_gid = e.gid;
                        return 1;
                }
        }
        return r;
}

struct gid_list {
        gid_t *v;
        size_t n, cap;
};

static int gid_list_add(struct gid_list *l, gid_t g) {
        if (l->n == l->cap) {
                /* Duplicates are removed later; this bounds memory if a
                 * group file lists the user absurdly often. */
                if (l->cap >= 4 * USER_GROUPS_MAX)
                        return -E2BIG;
                size_t ncap = l->cap ? l->cap * 2 : 16;
                gid_t *nv = reallocarray(l->v, ncap, sizeof(gid_t));
                if (!nv)
                        return -ENOMEM;
                l->v = nv;
                l->cap = ncap;
        }
        l->v[l->n++] = g;
        return 0;
}

static int gid_cmp(const void *a, const void *b) {
        gid_t x = *(const gid_t *) a, y = *(const gid_t *) b;
        return x < y ? -1 : x > y;
}

/* Adds the gid of every group listing @name. A missing group file just
 * means no supplementary groups. */
static int collect_member_groups(const char *path, const char *name, struct gid_list *l) {
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        int r;

        if (!f)
                return 0;
        while ((r = next_line(f, &line, &size)) > 0) {
                struct gr_entry e;
                if (parse_group_line(line, &e) && members_contain(e.members, name)) {
                        r = gid_list_add(l, e.gid);
                        if (r < 0)
                                return r;
                }
        }
        return r < 0 && r != -ENOMEM ? 0 : r;
}

static int fail(char **ret_error, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;
        if (ret_error) {
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return r;
}

/* " (open PATH: reason)" when a lookup failed because the file could not
 * be read, so "unknown user" is not misleading. */
static void lookup_note(int r, const char *path, char *note, size_t size) {
        note[0] = '\0';
        if (r < 0 && r != -ENOMEM) {
                char reason[128];
                snprintf(note, size, " (open %s: %s)", path, errno_text(-r, reason, sizeof(reason)));
        }
}

int user_resolve(const char *spec, const char *passwd_path, const char *group_path, struct user_spec *ret,
                 char **ret_error) {
        _cleanup_free_ char *copy = NULL;
        _cleanup_(user_spec_clear) struct user_spec u = {};
        struct gid_list groups = {};
        char note[512];
        bool known;
        uint32_t id = 0;
        int r;

        if (ret_error)
                *ret_error = NULL;
        if (!passwd_path)
                passwd_path = "/etc/passwd";
        if (!group_path)
                group_path = "/etc/group";
        if (!spec || !*spec)
                return fail(ret_error, -EINVAL, "empty user spec");

        copy = strdup(spec);
        if (!copy)
                return -ENOMEM;
        char *user_part = copy, *group_part = strchr(copy, ':');
        if (group_part)
                *group_part++ = '\0';
        if (!*user_part || (group_part && (!*group_part || strchr(group_part, ':'))))
                return fail(ret_error, -EINVAL, "invalid user spec \"%.*s\"", SPEC_QUOTE_MAX, spec);

        if (is_all_digits(user_part)) {
                if (parse_id(user_part, &id) < 0)
                        return fail(ret_error, -EINVAL, "invalid uid \"%.*s\"", SPEC_QUOTE_MAX, user_part);
                r = passwd_find(passwd_path, NULL, id, &u);
                if (r == -ENOMEM)
                        return r;
                known = r > 0;
                if (!known) {
                        if (asprintf(&u.name, "%" PRIu32, id) < 0) {
                                u.name = NULL;
                                return -ENOMEM;
                        }
                        u.home = strdup("/");
                        u.shell = strdup("/bin/sh");
                        if (!u.home || !u.shell)
                                return -ENOMEM;
                        u.uid = id;
                        u.gid = id;
                }
        } else {
                r = passwd_find(passwd_path, user_part, 0, &u);
                if (r == -ENOMEM)
                        return r;
                if (r <= 0) {
                        lookup_note(r, passwd_path, note, sizeof(note));
                        return fail(ret_error, -ENOENT, "unknown user \"%.*s\"%s", SPEC_QUOTE_MAX, user_part, note);
                }
                known = true;
        }

        if (group_part) {
                if (is_all_digits(group_part)) {
                        if (parse_id(group_part, &id) < 0)
                                return fail(ret_error, -EINVAL, "invalid gid \"%.*s\"", SPEC_QUOTE_MAX, group_part);
                } else {
                        r = group_find(group_path, group_part, &id);
                        if (r == -ENOMEM)
                                return r;
                        if (r <= 0) {
                                lookup_note(r, group_path, note, sizeof(note));
                                return fail(ret_error, -ENOENT, "unknown group \"%.*s\"%s", SPEC_QUOTE_MAX,
                                            group_part, note);
                        }
                }
                u.gid = id;
        }

        /* Only a user with a passwd name can be listed in group files; an
         * unknown numeric uid's "name" is just its number. */
        r = gid_list_add(&groups, u.gid);
        if (r >= 0 && known)
                r = collect_member_groups(group_path, u.name, &groups);
        if (r < 0) {
                free(groups.v);
                return r == -E2BIG ? fail(ret_error, r, "too many supplementary groups for \"%.*s\"",
                                          SPEC_QUOTE_MAX, u.name)
                                   : r;
        }
        qsort(groups.v, groups.n, sizeof(gid_t), gid_cmp);
        size_t n = 0;
        for (size_t i = 0; i < groups.n; i++)
                if (n == 0 || groups.v[n - 1] != groups.v[i])
                        groups.v[n++] = groups.v[i];
        if (n > USER_GROUPS_MAX) {
                free(groups.v);
                return fail(ret_error, -E2BIG, "too many supplementary groups for \"%.*s\"", SPEC_QUOTE_MAX, u.name);
        }
        u.groups = groups.v;
        u.n_groups = n;

        *ret = u;
        u = (struct user_spec) {};
        return 0;
}

void user_spec_clear(struct user_spec *u) {
        if (!u)
                return;
        free(u->groups);
        free(u->name);
        free(u->home);
        free(u->shell);
        *u = (struct user_spec) {};
}

/* Raw system calls, not the libc wrappers: in a threaded process glibc
 * applies set*id to every thread of the caller through its thread list,
 * which a CLONE_VM child shares with the agent (spawn.c). A raw call
 * changes only the calling process. */
#ifdef SYS_setresuid32
#define NR_SETGROUPS SYS_setgroups32
#define NR_SETRESGID SYS_setresgid32
#define NR_SETRESUID SYS_setresuid32
#else
#define NR_SETGROUPS SYS_setgroups
#define NR_SETRESGID SYS_setresgid
#define NR_SETRESUID SYS_setresuid
#endif

int user_switch_child(const struct user_spec *u) {
        /* setres*id rather than set*id: all three ids change or the call
         * fails, whatever the caller's privileges. */
        if (syscall(NR_SETGROUPS, u->n_groups, u->groups) < 0)
                return -errno;
        if (syscall(NR_SETRESGID, u->gid, u->gid, u->gid) < 0)
                return -errno;
        if (syscall(NR_SETRESUID, u->uid, u->uid, u->uid) < 0)
                return -errno;
        return 0;
}

/* ---- names of ids ----------------------------------------------------------- */

struct id_name {
        uint32_t id;
        uint32_t seq; /* file order: the first entry of an id wins */
        char *name;
};

struct id_table {
        struct id_name *v;
        size_t n;
};

struct user_names {
        struct id_table users, groups;
};

static int id_name_cmp(const void *a, const void *b) {
        const struct id_name *x = a, *y = b;
        if (x->id != y->id)
                return x->id < y->id ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void id_table_clear(struct id_table *t) {
        for (size_t i = 0; i < t->n; i++)
                free(t->v[i].name);
        free(t->v);
        *t = (struct id_table) {};
}

/* Read @path's entries (passwd: @group false) into @t, sorted by id with
 * one entry per id. */
static int id_table_load(const char *path, bool group, struct id_table *t) {
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        _cleanup_free_ char *line = NULL;
        size_t size = 0, cap = 0;
        int r;
        if (!f)
                return 0; /* no file, no names */
        while (t->n < USER_NAMES_MAX && (r = next_line(f, &line, &size)) > 0) {
                uint32_t id;
                const char *name;
                if (group) {
                        struct gr_entry e;
                        if (!parse_group_line(line, &e))
                                continue;
                        id = e.gid;
                        name = e.name;
                } else {
                        struct pw_entry e;
                        if (!parse_passwd_line(line, &e))
                                continue;
                        id = e.uid;
                        name = e.name;
                }
                if (t->n == cap) {
                        size_t ncap = cap ? cap * 2 : 64;
                        struct id_name *nv = reallocarray(t->v, ncap, sizeof *nv);
                        if (!nv)
                                return -ENOMEM;
                        t->v = nv;
                        cap = ncap;
                }
                char *copy = strdup(name);
                if (!copy)
                        return -ENOMEM;
                t->v[t->n] = (struct id_name) { .id = id, .seq = (uint32_t) t->n, .name = copy };
                t->n++;
        }
        if (t->n == 0)
                return 0;
        qsort(t->v, t->n, sizeof *t->v, id_name_cmp);
        size_t k = 0;
        for (size_t i = 0; i < t->n; i++) {
                if (k > 0 && t->v[k - 1].id == t->v[i].id)
                        free(t->v[i].name);
                else
                        t->v[k++] = t->v[i];
        }
        t->n = k;
        return 0;
}

int user_names_load(const char *passwd_path, const char *group_path, struct user_names **ret) {
        struct user_names *n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        int r = id_table_load(passwd_path ? passwd_path : "/etc/passwd", false, &n->users);
        if (r >= 0)
                r = id_table_load(group_path ? group_path : "/etc/group", true, &n->groups);
        if (r < 0) {
                user_names_free(n);
                return r;
        }
        *ret = n;
        return 0;
}

static const char *id_table_find(const struct id_table *t, uint32_t id) {
        size_t lo = 0, hi = t->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (t->v[mid].id == id)
                        return t->v[mid].name;
                if (t->v[mid].id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

const char *user_names_user(const struct user_names *n, uint32_t uid) {
        return n ? id_table_find(&n->users, uid) : NULL;
}

const char *user_names_group(const struct user_names *n, uint32_t gid) {
        return n ? id_table_find(&n->groups, gid) : NULL;
}

void user_names_free(struct user_names *n) {
        if (!n)
                return;
        id_table_clear(&n->users);
        id_table_clear(&n->groups);
        free(n);
}
