/* libFuzzer target: the one decision of which answer bytes may join a part (src/ranges.c),
 * with the part's record and the answer's headers drawn from the input (lines: held, recorded
 * length, recorded validator, status, Content-Range, ETag, Last-Modified; a missing line is an
 * absent header). What must hold whatever a server sends:
 * - bytes are appended only from a 206 that starts exactly at the part's end, names the
 *   recorded validator, and whose complete length agrees with the record's;
 * - a part is complete only by a 416 whose length is the part's size (and the record's);
 * - a verdict's length is never below what the part holds.
 * The same answer to a range of a split body (ranges_decide_range), asked of url and of a
 * mirror not heard from yet: written only when it is a 206 of exactly the range and length,
 * of url's version, or, from the mirror, naming a strong validator of its own that is learnt. */
#include "../../src/ranges.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  char *line[7] = {0};
  char *p = text;
  for (int i = 0; i < 7 && p; i++) {
    line[i] = p;
    p = strchr(p, '\n');
    if (p) *p++ = '\0';
  }
  long long held = line[0] ? strtoll(line[0], NULL, 10) : 1;
  if (held <= 0) held = 1; /* a ranged request continues a part that holds something */
  long long total = line[1] ? strtoll(line[1], NULL, 10) : -1;
  if (total < -1 || (total >= 0 && total < held)) total = -1;
  ranges_part part = {held, total, line[2] && *line[2] ? line[2] : "\"v\""};
  ranges_answer a = {line[3] ? strtol(line[3], NULL, 10) : 206, line[4], line[5], line[6], -1, -1};
  long long got = -7;
  ranges_verdict v = ranges_decide(&part, &a, &got);
  long long from, to, t;
  if (v == RANGES_APPEND) {
    if (a.status != 206 || !content_range(a.content_range, &from, &to, &t) || from != held) __builtin_trap();
    if (!ranges_same_version(part.validator, a.etag, a.last_modified)) __builtin_trap();
    if (total >= 0 && got != total) __builtin_trap();
    if (got <= held - 1 || got < to + 1) __builtin_trap();
  } else if (v == RANGES_COMPLETE) {
    if (a.status != 416 || got != held || (total >= 0 && total != held)) __builtin_trap();
  } else if (v == RANGES_WHOLE) {
    if (a.status == 206 || a.status == 416) __builtin_trap();
  }
  if (held > LLONG_MAX / 2) held = LLONG_MAX / 2; /* a range's end past it must fit */
  long long end = held + 100, length = total >= end ? total : end;
  ranges_range r = {held, end, length, part.validator, 0, -1, 0};
  const char *learnt = NULL;
  int exact = a.status == 206 && content_range(a.content_range, &from, &to, &t) && from == held &&
              to == end - 1 && t == length;
  v = ranges_decide_range(&r, &a, &learnt);
  if (v != RANGES_WRITE && v != RANGES_UNUSABLE) __builtin_trap();
  if (v == RANGES_WRITE && (!exact || learnt || !ranges_same_version(part.validator, a.etag, a.last_modified)))
    __builtin_trap();
  r.validator = NULL;
  r.mirror = 1;
  v = ranges_decide_range(&r, &a, &learnt);
  if (v == RANGES_WRITE && (!exact || !learnt || (learnt != a.etag && learnt != a.last_modified))) __builtin_trap();
  if (v == RANGES_UNUSABLE && learnt) __builtin_trap();
  free(text);
  return 0;
}
