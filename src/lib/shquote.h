/* POSIX sh quoting of an argument vector: the bridge between agents that
 * run `args` directly and agents that ignore `args` and run `command`
 * through `sh -c`.
 *
 * The canonical form quotes every word with single quotes, writes each
 * single quote inside a word as '\'' and joins the words with one space:
 *
 *     printf, [%s], it's  ->  'printf' '[%s]' 'it'\''s'
 *
 * Every word is quoted, even a plain one, so that no word is ever read as
 * a reserved word ("if"), an assignment ("A=b"), a tilde or a glob: the
 * shell gives back exactly the bytes it was given, newlines and non-UTF-8
 * included. The form is fixed so that an agent can tell a request built
 * this way (command == the canonical quoting of args) from an older one
 * (command = program, args = its arguments). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Whether @line is exactly the canonical quoting of @words[0..n) (n >= 1).
 * No allocation: safe on a request that is still being checked. */
bool shquote_matches(const char *line, char *const *words, size_t n);
