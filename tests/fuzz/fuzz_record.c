/* libFuzzer target: the part's record as read back from disk (src/record.c), where any bytes
 * may be (a crash, another program, a disk error). What must hold: a text that parses is a
 * whole record (a validator within the cap, no line break in a field, a length >= -1), and
 * formatting what was parsed gives a text that parses to the same record. */
#include "../../src/record.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  part_record r;
  if (record_parse(text, size, &r)) {
    if (!r.validator || !*r.validator || strlen(r.validator) > RECORD_VALIDATOR_MAX || r.length < -1 ||
        strpbrk(r.validator, "\r\n") || strpbrk(r.name, "\r\n") || (r.ranges && strpbrk(r.ranges, "\r\n")))
      __builtin_trap();
    size_t n = 0;
    char *again = record_format(&r, &n);
    if (!again) __builtin_trap();
    part_record back;
    if (!record_parse(again, n, &back) || back.length != r.length || strcmp(back.validator, r.validator) != 0 ||
        strcmp(back.name, r.name) != 0 || !back.ranges != !r.ranges ||
        (r.ranges && strcmp(back.ranges, r.ranges) != 0))
      __builtin_trap();
    free(again);
  }
  free(text);
  return 0;
}
