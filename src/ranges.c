/*
 * ranges.c: which bytes of an answer may join a part (ranges.h).
 */
#include "ranges.h"

#include <stdio.h>

/* "bytes a-b/t" (t may be "*": -1); 1 when it parses */
int content_range(const char *v, long long *a, long long *b, long long *t) {
  int n = 0;
  *t = -1;
  if (!v) return 0;
  if (sscanf(v, " bytes %lld-%lld/%lld%n", a, b, t, &n) == 3 && n > 0) return *a >= 0 && *b >= *a;
  n = 0;
  if (sscanf(v, " bytes %lld-%lld/*%n", a, b, &n) == 2 && n > 0) return *a >= 0 && *b >= *a;
  return 0;
}
