/* The ABI of libvsock.so, checked from the outside: this program sees only
 * the public headers (built with include/ alone, as after an install) and
 * links the shared library. It holds three lists to each other:
 *
 *   the functions the public headers declare,
 *   the map (src/lib/libvsock.map, global names of VSOCK_0.1),
 *   what the built library exports (nm -D --defined-only),
 *
 * so no private symbol leaks out of the .so, no public function is left
 * unexported or unversioned, and the map names nothing that is gone. It
 * also checks the version macros against meson's project version and the
 * library's vsock_version(), and the soname against meson's soversion.
 *
 * Usage: test-abi NM READELF LIBVSOCK_SO MAP HEADER_DIR... (EXPECT_VERSION
 * and EXPECT_SONAME are meson's, compiled in). */
#include <ctype.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vsock/vsock.h>

#if !defined(EXPECT_VERSION) || !defined(EXPECT_SONAME)
#error "EXPECT_VERSION and EXPECT_SONAME (meson's) are required"
#endif

struct names {
        char **v;
        size_t n;
};

static int failures;

#define FAIL(...)                                       \
        do {                                            \
                fprintf(stderr, "test-abi: " __VA_ARGS__); \
                fputc('\n', stderr);                    \
                failures++;                             \
        } while (0)

static void names_add(struct names *s, const char *name, size_t len) {
        for (size_t i = 0; i < s->n; i++)
                if (strlen(s->v[i]) == len && memcmp(s->v[i], name, len) == 0)
                        return;
        s->v = realloc(s->v, (s->n + 1) * sizeof *s->v);
        if (!s->v || !(s->v[s->n] = strndup(name, len))) {
                perror("test-abi");
                exit(2);
        }
        s->n++;
}

static void names_free(struct names *s) {
        for (size_t i = 0; i < s->n; i++)
                free(s->v[i]);
        free(s->v);
        *s = (struct names) {};
}

static bool names_has(const struct names *s, const char *name) {
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->v[i], name) == 0)
                        return true;
        return false;
}

static char *slurp(const char *path) {
        FILE *f = fopen(path, "re");
        if (!f) {
                perror(path);
                exit(2);
        }
        char *text = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);
        char buf[4096];
        size_t k;
        while (m && (k = fread(buf, 1, sizeof buf, f)) > 0)
                fwrite(buf, 1, k, m);
        fclose(f);
        if (!m || fclose(m) != 0) {
                perror("test-abi");
                exit(2);
        }
        return text;
}

/* Blank out C comments (a comment may name a function it does not
 * declare); newlines stay, so nothing else changes. */
static void strip_comments(char *s) {
        for (char *p = s; *p; p++) {
                if (p[0] == '/' && p[1] == '*') {
                        char *e = strstr(p + 2, "*/");
                        char *end = e ? e + 2 : p + strlen(p);
                        for (; p < end; p++)
                                if (*p != '\n')
                                        *p = ' ';
                        p--;
                } else if (p[0] == '/' && p[1] == '/') {
                        for (; *p && *p != '\n'; p++)
                                *p = ' ';
                        if (!*p)
                                break;
                }
        }
}

static bool ident_char(char c) { return isalnum((unsigned char) c) || c == '_'; }

/* Every "vsock_NAME (" outside comments in the .h files of @dir: the
 * functions the public headers declare. (Macros and types are upper
 * case or not followed by a parenthesis.) */
static void header_functions(const char *dir, struct names *ret) {
        DIR *d = opendir(dir);
        if (!d) {
                perror(dir);
                exit(2);
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                size_t nl = strlen(de->d_name);
                if (nl < 3 || strcmp(de->d_name + nl - 2, ".h") != 0)
                        continue;
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
                char *text = slurp(path);
                strip_comments(text);
                for (char *p = text; (p = strstr(p, "vsock_")); p++) {
                        if (p > text && ident_char(p[-1]))
                                continue;
                        size_t len = 0;
                        while (ident_char(p[len]))
                                len++;
                        const char *q = p + len;
                        while (*q == ' ' || *q == '\t' || *q == '\n')
                                q++;
                        if (*q == '(')
                                names_add(ret, p, len);
                }
                free(text);
        }
        closedir(d);
}

/* The global names of the map's VSOCK_0.1 node. */
static void map_names(const char *path, struct names *ret) {
        char *text = slurp(path);
        strip_comments(text);
        char *node = strstr(text, "VSOCK_0.1");
        char *global = node ? strstr(node, "global:") : NULL;
        char *local = global ? strstr(global, "local:") : NULL;
        if (!local) {
                FAIL("%s: no VSOCK_0.1 { global: ... local: *; } node", path);
                free(text);
                return;
        }
        *local = 0;
        for (char *tok = strtok(global + strlen("global:"), " \t\n;"); tok; tok = strtok(NULL, " \t\n;"))
                names_add(ret, tok, strlen(tok));
        free(text);
}

/* What the library exports, with the version each name is bound to. */
static void exported(const char *nm, const char *so, struct names *ret, struct names *ret_unversioned) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "'%s' -D --defined-only '%s'", nm, so);
        FILE *p = popen(cmd, "re");
        if (!p) {
                perror("popen");
                exit(2);
        }
        char line[1024];
        while (fgets(line, sizeof line, p)) {
                char addr[64], type[8], sym[512];
                if (sscanf(line, "%63s %7s %511s", addr, type, sym) != 3)
                        continue;
                if (strcmp(type, "A") == 0)
                        continue; /* the version node itself */
                char *at = strstr(sym, "@@");
                if (!at || strcmp(at + 2, "VSOCK_0.1") != 0) {
                        names_add(ret_unversioned, sym, strlen(sym));
                        continue;
                }
                names_add(ret, sym, (size_t) (at - sym));
        }
        if (pclose(p) != 0) {
                FAIL("%s failed", cmd);
                exit(2);
        }
}

static void check_version(void) {
        char parts[64];
        snprintf(parts, sizeof parts, "%d.%d.%d", VSOCK_VERSION_MAJOR, VSOCK_VERSION_MINOR, VSOCK_VERSION_PATCH);
        if (strcmp(VSOCK_VERSION_STRING, EXPECT_VERSION) != 0)
                FAIL("VSOCK_VERSION_STRING \"%s\", meson's version \"%s\"", VSOCK_VERSION_STRING, EXPECT_VERSION);
        if (strcmp(parts, EXPECT_VERSION) != 0)
                FAIL("VSOCK_VERSION_MAJOR.MINOR.PATCH %s, meson's version \"%s\"", parts, EXPECT_VERSION);
        if (VSOCK_VERSION_NUMBER != ((VSOCK_VERSION_MAJOR << 16) | (VSOCK_VERSION_MINOR << 8) | VSOCK_VERSION_PATCH))
                FAIL("VSOCK_VERSION_NUMBER 0x%06x", (unsigned) VSOCK_VERSION_NUMBER);
        const char *v = vsock_version();
        if (!v || strcmp(v, EXPECT_VERSION) != 0)
                FAIL("vsock_version() \"%s\", meson's version \"%s\"", v ? v : "(null)", EXPECT_VERSION);
}

static void check_soname(const char *readelf, const char *so) {
        char cmd[8192], line[1024];
        bool found = false;
        snprintf(cmd, sizeof cmd, "'%s' -d '%s'", readelf, so);
        FILE *p = popen(cmd, "re");
        if (!p) {
                perror("popen");
                exit(2);
        }
        while (fgets(line, sizeof line, p)) {
                const char *s = strstr(line, "(SONAME)");
                const char *b = s ? strchr(s, '[') : NULL;
                const char *e = b ? strchr(b, ']') : NULL;
                if (!e)
                        continue;
                found = true;
                if ((size_t) (e - b - 1) != strlen(EXPECT_SONAME) || memcmp(b + 1, EXPECT_SONAME, (size_t) (e - b - 1)))
                        FAIL("soname %.*s, meson's %s", (int) (e - b - 1), b + 1, EXPECT_SONAME);
        }
        if (pclose(p) != 0 || !found)
                FAIL("%s: no SONAME", cmd);
}

int main(int argc, char **argv) {
        struct names declared = {}, mapped = {}, exports = {}, unversioned = {};

        if (argc < 6) {
                fprintf(stderr, "usage: %s NM READELF LIBVSOCK_SO MAP HEADER_DIR...\n", argv[0]);
                return 2;
        }
        check_version();
        check_soname(argv[2], argv[3]);
        for (int i = 5; i < argc; i++)
                header_functions(argv[i], &declared);
        map_names(argv[4], &mapped);
        exported(argv[1], argv[3], &exports, &unversioned);

        for (size_t i = 0; i < unversioned.n; i++)
                FAIL("exported without the VSOCK_0.1 version: %s", unversioned.v[i]);
        for (size_t i = 0; i < exports.n; i++)
                if (!names_has(&mapped, exports.v[i]))
                        FAIL("exported but not in the map: %s", exports.v[i]);
        for (size_t i = 0; i < exports.n; i++)
                if (!names_has(&declared, exports.v[i]))
                        FAIL("exported but declared in no public header (private?): %s", exports.v[i]);
        for (size_t i = 0; i < mapped.n; i++)
                if (!names_has(&exports, mapped.v[i]))
                        FAIL("in the map but not exported (gone, or not marked _public_): %s", mapped.v[i]);
        for (size_t i = 0; i < declared.n; i++)
                if (!names_has(&mapped, declared.v[i]))
                        FAIL("declared in a public header but not in src/lib/libvsock.map: %s", declared.v[i]);
        if (declared.n == 0 || exports.n == 0)
                FAIL("nothing found (%zu declared, %zu exported)", declared.n, exports.n);

        printf("test-abi: %zu functions declared, %zu in the map, %zu exported; version %s, %s\n", declared.n,
               mapped.n, exports.n, vsock_version(), EXPECT_SONAME);
        names_free(&declared);
        names_free(&mapped);
        names_free(&exports);
        names_free(&unversioned);
        return failures ? 1 : 0;
}
