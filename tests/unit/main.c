/* The C unit tests of the module's pure parts: `make unit` (under ASan and UBSan). */
#include "unit.h"

int unit_passed, unit_failed;

int main(void) {
  test_ranges();
  test_record();
  test_httpdate();
  test_headers();
  test_pace();
  test_queue();
  printf("%d passed, %d failed\n", unit_passed, unit_failed);
  return unit_failed > 0;
}
