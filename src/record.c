/*
 * record.c: the part's record, formatted and parsed (record.h).
 */
#include "record.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "downloadtask part 2"

static int one_line(const char *s) { return s && !strpbrk(s, "\r\n"); }

char *record_format(const part_record *r, size_t *len) {
  if (!r->validator || !*r->validator || strlen(r->validator) > RECORD_VALIDATOR_MAX ||
      !one_line(r->validator) || !r->name || !one_line(r->name) || (r->ranges && !one_line(r->ranges)))
    return NULL;
  size_t n = strlen(MAGIC) + strlen(r->validator) + strlen(r->name) +
             (r->ranges ? strlen(r->ranges) : 0) + 80;
  char *text = malloc(n);
  if (!text) return NULL;
  int k = snprintf(text, n, MAGIC "\nlength %lld\nvalidator %s\nname %s\n%s%s%s",
                   r->length < 0 ? -1LL : r->length, r->validator, r->name,
                   r->ranges ? "ranges " : "", r->ranges ? r->ranges : "", r->ranges ? "\n" : "");
  if (k < 0 || (size_t)k >= n) {
    free(text);
    return NULL;
  }
  *len = (size_t)k;
  return text;
}

/* The line at *p that starts with `key ` (its rest, terminated in place), moving *p past
 * it; NULL when the next line is not that or has no newline. */
static char *field(char **p, char *end, const char *key) {
  size_t k = strlen(key);
  char *nl = memchr(*p, '\n', (size_t)(end - *p));
  if (!nl || (size_t)(nl - *p) < k + 1 || memcmp(*p, key, k) != 0 || (*p)[k] != ' ') return NULL;
  char *v = *p + k + 1;
  *nl = '\0';
  *p = nl + 1;
  return v;
}

int record_parse(char *text, size_t len, part_record *r) {
  if (len > RECORD_MAX || memchr(text, '\0', len)) return 0;
  char *p = text, *end = text + len;
  size_t m = strlen(MAGIC);
  if (len < m + 1 || memcmp(p, MAGIC "\n", m + 1) != 0) return 0;
  p += m + 1;
  char *length = field(&p, end, "length");
  char *validator = length ? field(&p, end, "validator") : NULL;
  char *name = validator ? field(&p, end, "name") : NULL;
  if (!name) return 0;
  char *ranges = NULL;
  if (p < end && !(ranges = field(&p, end, "ranges"))) return 0;
  if (p != end) return 0; /* something after the last line */
  if (strcmp(length, "-1") != 0 && (*length < '0' || *length > '9')) return 0; /* no sign, no space */
  char *after;
  errno = 0;
  long long n = strtoll(length, &after, 10);
  if (errno || *after != '\0' || n < -1) return 0;
  if (!*validator || strlen(validator) > RECORD_VALIDATOR_MAX || strchr(validator, '\r')) return 0;
  if (strchr(name, '\r') || (ranges && strchr(ranges, '\r'))) return 0;
  r->length = n;
  r->validator = validator;
  r->name = name;
  r->ranges = ranges;
  return 1;
}
