/* Pre-scan of a JSON text for the big string values of its top-level
 * object, so that jansson does not have to lex them.
 *
 * jansson copies and checks a string byte by byte; a 16 MiB base64
 * []byte field costs it ~250 ms. Go's base64 output never needs a JSON
 * escape, so such a value can be read straight from the text. The decoder
 * (msg_decode.c) cuts the big values out of a copy of the text, lets
 * jansson parse the small rest (structure, types, unknown fields, all as
 * before), and takes the big values from the original buffer.
 *
 * Why cutting is safe: a value is taken only when its content is plain
 * printable ASCII (0x20..0x7e, no backslash), so jansson lexes it as one
 * string token whose value is exactly its bytes, and replacing that
 * content with nothing leaves a string token in the same place. So the
 * reduced text is valid JSON with the same structure whenever the original
 * is. The scan itself trusts nothing: on any input it does not understand
 * it finds nothing, and the caller parses the whole text with jansson. */
#pragma once

#include <stddef.h>

/* At most this many values are cut out; others stay in the text (jansson
 * parses them, slowly but correctly). Go's messages carry at most two. */
#define JSON_BIGSTR_MAX 8

struct json_bigstr {
        size_t key_off, key_len; /* the member's key, raw (it has no escape) */
        size_t off, len;         /* the value's content, without its quotes */
};

struct json_bigstr_scan {
        struct json_bigstr big[JSON_BIGSTR_MAX];
        size_t n_big;
        /* Members of the top-level object as written, duplicates counted:
         * if jansson's object has fewer, some key occurs twice. */
        size_t n_members;
};

/* Scan @text[0..len): if it starts (after whitespace) with an object,
 * record the members of that object whose value is a string of at least
 * @min_len content bytes, all in 0x20..0x7e and none a backslash, and whose
 * key has no backslash (the first JSON_BIGSTR_MAX of them, in text order).
 * Returns the number recorded (0 when there is none, or when the text is
 * not an object or is cut short inside a string). Never fails otherwise;
 * malformed JSON is for jansson to reject. */
size_t json_bigstr_scan(const char *text, size_t len, size_t min_len, struct json_bigstr_scan *ret);

/* A malloc'd copy of @text[0..len) with the content of every value in @s
 * removed (each becomes ""), NUL-terminated. Returns 0 and the copy in
 * *ret / its length in *ret_len, or -ENOMEM. */
int json_bigstr_reduce(const char *text, size_t len, const struct json_bigstr_scan *s, char **ret, size_t *ret_len);

/* jansson's tree costs ~100 bytes per value, so a frame of tiny values
 * ("",) would cost ~30 times its size. More values than this are refused
 * before jansson sees them; Go's messages hold a few per variable or
 * argument, far below. */
#define JSON_VALUES_MAX (1u << 20)

/* An upper bound on the number of values in @text[0..len) (every '[',
 * '{' and ',' outside strings, plus one), counting stops once past
 * @limit. One pass, no allocation; malformed text is for jansson. */
size_t json_count_values(const char *text, size_t len, size_t limit);
