/*
 * ranges.h: which bytes of an answer may join a part. Pure functions: no libcurl, no I/O,
 * no clock; the engine hands them the part's record and the answer's status and headers,
 * and does what the verdict says. Unit-tested in tests/unit/test_ranges.c; the rules are
 * docs/resume.md's.
 */
#ifndef DT_RANGES_H
#define DT_RANGES_H

/* Content-Range "bytes a-b/t" (t may be "*": -1); 1 when it parses. */
int content_range(const char *v, long long *a, long long *b, long long *t);

/* The strong validator of an answer (RFC 9110 8.8.1, 8.8.2.2): its ETag unless weak ("W/"),
 * quoted or not; failing that its Last-Modified, when it is earlier than the answer's Date
 * (lm_time and date_time: seconds since the epoch, -1 when absent or unparsable; one equal
 * to Date is weak). NULL when it has none: its bytes cannot be continued or split. */
const char *ranges_strong_validator(const char *etag, const char *last_modified,
                                    long long lm_time, long long date_time);

/* Whether an answer is of the version a part recorded: its ETag or its Last-Modified is the
 * recorded validator, compared as the exact string. An answer naming neither is not. */
int ranges_same_version(const char *recorded, const char *etag, const char *last_modified);

/* The part a ranged request asked to continue: the bytes [0, held) of one version. */
typedef struct ranges_part {
  long long held;        /* bytes it holds (> 0); the request asked for bytes=held- */
  long long total;       /* its complete length as first answered, -1 when not recorded */
  const char *validator; /* the strong validator it recorded (sent as If-Range) */
} ranges_part;

/* What an answer to that request says about its bytes. */
typedef struct ranges_answer {
  long status;
  const char *content_range; /* NULL when absent */
  const char *etag;          /* NULL when absent */
  const char *last_modified; /* NULL when absent */
  long long lm_time;         /* Last-Modified and Date in seconds since the epoch, -1 when absent */
  long long date_time;       /* or unparsable (ranges_decide_range only) */
} ranges_answer;

typedef enum ranges_verdict {
  RANGES_WHOLE,      /* no continuation: a whole body (a 200) or an ordinary answer (404...) */
  RANGES_APPEND,     /* a 206 of the same version and length, from byte `held` on */
  RANGES_COMPLETE,   /* a 416 of the same version and length: the part was whole already */
  RANGES_START_OVER, /* a 206 or 416 of another version, length or place: the part's bytes
                        cannot join it, and nothing of this answer may be written to it */
  RANGES_WRITE,      /* a range of a split body: write it where it belongs */
  RANGES_UNUSABLE    /* a range of a split body that is not the bytes asked: write nothing;
                        the URL is dropped (a mirror) or the ranges are given up (url) */
} ranges_verdict;

/* The one decision: what the answer's bytes are to the part. For RANGES_APPEND and
 * RANGES_COMPLETE, *total is the complete length. */
ranges_verdict ranges_decide(const ranges_part *p, const ranges_answer *a, long long *total);

/* A range [start, end) of a split body (`segments`, `mirrors`), asked of one of its URLs. */
typedef struct ranges_range {
  long long start, end;   /* the bytes asked: start to end - 1 */
  long long total;        /* the body's complete length, as url's first answer said */
  const char *validator;  /* the URL's strong validator, sent as If-Range: url's, or a mirror's
                             learnt from its first answer; NULL when it has none (yet) */
  int mirror;             /* asked of a mirror: its validator is its own, learnt */
  long long url_lm_time;  /* url's Last-Modified (seconds since the epoch), -1 when it sent none */
  int checksum;           /* `sha256` vouches for the whole body */
} ranges_range;

/* Whether an answer's bytes are the range asked: RANGES_WRITE or RANGES_UNUSABLE. A 206 of
 * exactly those bytes and that complete length; of the URL's version when its validator is
 * known. A mirror's first answer (no validator yet) must also agree with url's Last-Modified
 * where both send one, and name a strong validator of its own, which *learnt points to (into
 * the answer's strings; the caller keeps a copy to guard the mirror's later ranges). Without
 * one, a mirror serves only with `checksum` (*learnt stays NULL). Real mirrors never share
 * ETags, so one mirror's ETag is never compared with another's. */
ranges_verdict ranges_decide_range(const ranges_range *r, const ranges_answer *a, const char **learnt);

#endif
