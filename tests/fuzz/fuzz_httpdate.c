/* libFuzzer target: HTTP dates (src/httpdate.c), as a caller's ifModifiedSince string may be
 * anything. What must hold: a date that parses is at or after 1970, and nothing is read past
 * the string's end. */
#include "../../src/httpdate.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  int64_t t = http_date(s, 1796601600);
  if (t < -1) __builtin_trap();
  free(s);
  return 0;
}
