/*
 * unit.h: the C unit tests' few macros (tests/unit/, `make unit`). A test file defines
 * functions that call CHECK; main.c lists them. Each CHECK that holds is one test passed;
 * one that does not prints where and what, and counts as failed. The run ends with the
 * line "<n> passed, <m> failed" and exits non-zero when m > 0.
 */
#ifndef DT_UNIT_H
#define DT_UNIT_H

#include <stdio.h>

extern int unit_passed, unit_failed;

/* cond holds, else the failure is reported with printf-style context */
#define CHECK(cond, ...)                                                            \
  do {                                                                              \
    if (cond) {                                                                     \
      unit_passed++;                                                                \
    } else {                                                                        \
      unit_failed++;                                                                \
      printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
      printf(__VA_ARGS__);                                                          \
      printf("\n");                                                                 \
    }                                                                               \
  } while (0)

void test_ranges(void);
void test_record(void);
void test_httpdate(void);
void test_headers(void);
void test_pace(void);
void test_queue(void);
void test_notify(void);

#endif
