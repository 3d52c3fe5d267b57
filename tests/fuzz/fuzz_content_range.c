/* libFuzzer target: Content-Range as a server sends it (src/ranges.c). What must hold:
 * a range that parses is well-formed (0 <= a <= b), and nothing reads past the input. */
#include "../../src/ranges.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1); /* a header value: NUL-terminated, as libcurl hands it over */
  if (!s) return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  long long a, b, t;
  if (content_range(s, &a, &b, &t) && !(a >= 0 && b >= a && t >= -1)) __builtin_trap();
  free(s);
  return 0;
}
