/*
 * record.h: the part's record, the ".info" file beside a resume part: what the first answer
 * that started the body said (its complete length and strong validator), whose part it is,
 * and, for a segmented part, the ranges held. Pure: one formatter and one parser of the
 * text, no I/O (files.c writes it by rename and reads it back). Unit-tested in
 * tests/unit/test_record.c, fuzzed by tests/fuzz/fuzz_record.c.
 *
 * The text, version 2 (a record of another version, or one that does not parse, is no
 * record: the part starts over):
 *   downloadtask part 2
 *   length <complete length, or -1 when the answer did not say>
 *   validator <the strong validator, 1 to RECORD_VALIDATOR_MAX bytes>
 *   name <the destination's last path component>
 *   ranges <a segmented part's ranges line>          (only for a segmented part)
 */
#ifndef DT_RECORD_H
#define DT_RECORD_H

#include <stddef.h>

/* The longest validator kept (ETags of 1 KiB and more exist: S3 multipart, some CDNs). */
#define RECORD_VALIDATOR_MAX 8192
/* The longest record text: the validator, a name (a path component: 4096 at most
 * anywhere), a ranges line (16 ranges of three numbers), and the keywords. */
#define RECORD_MAX (RECORD_VALIDATOR_MAX + 4096 + 1024 + 128)

typedef struct part_record {
  long long length;      /* complete length, -1 unknown */
  const char *validator; /* never NULL in a record */
  const char *name;
  const char *ranges;    /* NULL: not segmented */
} part_record;

/* The record's text (malloc'ed, *len bytes, NUL-terminated), or NULL when it cannot be
 * written: no memory, no validator, a validator over the cap, a CR or LF in a field. */
char *record_format(const part_record *r, size_t *len);

/* Parses text (len bytes; changed in place: the fields point into it). 1 when it is a
 * whole record of this version, else 0 and *r untouched. */
int record_parse(char *text, size_t len, part_record *r);

#endif
