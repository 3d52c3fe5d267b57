/* src/record.c: the part's record, formatted and parsed back; anything else is no record. */
#include "../../src/record.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

/* Formats r, parses the text back and compares. */
static void round_trip(const part_record *r, const char *why) {
  size_t n = 0;
  char *text = record_format(r, &n);
  CHECK(text != NULL && n == strlen(text), "%s: formatted", why);
  if (!text) return;
  part_record back;
  int ok = record_parse(text, n, &back);
  CHECK(ok && back.length == r->length && strcmp(back.validator, r->validator) == 0 &&
            strcmp(back.name, r->name) == 0 &&
            ((!back.ranges && !r->ranges) || (back.ranges && r->ranges && strcmp(back.ranges, r->ranges) == 0)),
        "%s: read back", why);
  free(text);
}

static int parses(const char *text) {
  char *copy = strdup(text);
  part_record r;
  int ok = copy && record_parse(copy, strlen(copy), &r);
  free(copy);
  return ok;
}

void test_record(void) {
  part_record r = {65536, "\"v1\"", "game.pak", NULL};
  round_trip(&r, "a plain part");
  r.length = -1;
  round_trip(&r, "item 2: the length unknown");
  r.length = 9223372036854775807LL;
  round_trip(&r, "the largest length");
  r.ranges = "4194304 0:1048576:1048576 1048576:1500000:2097152";
  round_trip(&r, "a segmented part");
  r.ranges = NULL;
  r.validator = "Mon, 01 Jan 2024 00:00:00 GMT";
  round_trip(&r, "a Last-Modified");
  r.validator = "v1";
  round_trip(&r, "an unquoted ETag");

  /* item 5: validators up to the cap, whatever their length */
  char *big = malloc(RECORD_VALIDATOR_MAX + 2);
  memset(big, 'e', RECORD_VALIDATOR_MAX + 1);
  big[RECORD_VALIDATOR_MAX] = '\0';
  r.validator = big;
  r.length = 100;
  round_trip(&r, "item 5: a validator of RECORD_VALIDATOR_MAX bytes");
  big[RECORD_VALIDATOR_MAX] = 'e';
  big[RECORD_VALIDATOR_MAX + 1] = '\0';
  size_t n;
  CHECK(record_format(&r, &n) == NULL, "a validator over the cap is not written");
  free(big);

  r.validator = "a\nb";
  CHECK(record_format(&r, &n) == NULL, "a validator with a line break");
  r.validator = "v";
  r.name = "x\ry";
  CHECK(record_format(&r, &n) == NULL, "a name with a CR");
  r.name = "n";
  r.validator = NULL;
  CHECK(record_format(&r, &n) == NULL, "no validator: no record");
  r.validator = "";
  CHECK(record_format(&r, &n) == NULL, "an empty validator: no record");

  CHECK(parses("downloadtask part 2\nlength 10\nvalidator \"a\"\nname f\n"), "the smallest record");
  CHECK(!parses("\"a\"\nf\n"), "a version 1 record (0.2's) is none: the part starts over");
  CHECK(!parses("downloadtask part 3\nlength 10\nvalidator \"a\"\nname f\n"), "a later version");
  CHECK(!parses("downloadtask part 2\nlength 10\nvalidator \"a\"\nname f"), "no newline after the last line (cut)");
  CHECK(!parses("downloadtask part 2\nlength 10\nvalidator \"a\"\n"), "no name");
  CHECK(!parses("downloadtask part 2\nlength 10\nvalidator \nname f\n"), "an empty validator");
  CHECK(!parses("downloadtask part 2\nlength -2\nvalidator \"a\"\nname f\n"), "a negative length");
  CHECK(!parses("downloadtask part 2\nlength +5\nvalidator \"a\"\nname f\n"), "a signed length");
  CHECK(!parses("downloadtask part 2\nlength  5\nvalidator \"a\"\nname f\n"), "a length after a space");
  CHECK(!parses("downloadtask part 2\nlength 5x\nvalidator \"a\"\nname f\n"), "a length with a tail");
  CHECK(!parses("downloadtask part 2\nlength 99999999999999999999\nvalidator \"a\"\nname f\n"), "a length too large");
  CHECK(!parses("downloadtask part 2\nvalidator \"a\"\nlength 5\nname f\n"), "fields out of order");
  CHECK(!parses("downloadtask part 2\nlength 5\nvalidator \"a\"\nname f\nranges 1 0:0:1\nmore\n"), "a line too many");
  CHECK(!parses("downloadtask part 2\nlength 5\nvalidator \"a\"\r\nname f\n"), "a CR in the validator");
  CHECK(!parses(""), "empty");
  char with_nul[] = "downloadtask part 2\nlength 5\nvalidator a\0b\nname f\n";
  part_record out;
  CHECK(!record_parse(with_nul, sizeof with_nul - 1, &out), "a zero byte inside");
}
