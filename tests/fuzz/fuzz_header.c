/* libFuzzer target: a response's header lines (src/headers.c), the input cut into lines at
 * LF as libcurl hands them over, with folding, repeats and the limits small enough to reach.
 * What must hold whatever a server sends:
 * - the list never holds more than max_count headers or max_bytes bytes;
 * - its buffer is exactly count pairs of NUL-terminated strings;
 * - each name is non-empty, in lower case, without a colon, and does not start with a blank;
 *   no name or value holds a LF, and no value starts or ends with a blank;
 * - hlist_find finds the first pair of each name. */
#include "../../src/headers.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_COUNT = 16, MAX_BYTES = 512 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hlist h = {0};
  const char *p = (const char *)data, *end = p + size;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
    int rc = hlist_add_line(&h, p, n, MAX_COUNT, MAX_BYTES);
    if (rc != HLIST_OK && rc != HLIST_FULL) __builtin_trap();
    p += n;
  }
  if (h.count > MAX_COUNT || h.len > MAX_BYTES) __builtin_trap();
  size_t at = 0;
  for (size_t i = 0; i < h.count; i++) {
    const char *name = h.buf + at;
    size_t nl = strnlen(name, h.len - at);
    if (at + nl >= h.len || nl == 0 || name[0] == ' ' || name[0] == '\t') __builtin_trap();
    for (size_t k = 0; k < nl; k++)
      if (name[k] == ':' || name[k] == '\n' || (name[k] >= 'A' && name[k] <= 'Z')) __builtin_trap();
    const char *value = name + nl + 1;
    at += nl + 1;
    size_t vl = strnlen(value, h.len - at);
    if (at + vl >= h.len) __builtin_trap();
    if (memchr(value, '\n', vl)) __builtin_trap();
    if (vl > 0 && (value[0] == ' ' || value[0] == '\t' || value[vl - 1] == ' ' || value[vl - 1] == '\t'))
      __builtin_trap();
    const char *found = hlist_find(&h, name);
    if (!found || found > value) __builtin_trap(); /* the first of that name */
    at += vl + 1;
  }
  if (at != h.len) __builtin_trap();
  hlist_free(&h);
  return 0;
}
