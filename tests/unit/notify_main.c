/* The notifier's unit test runs apart from the pure ones: it needs the platform layer. */
#include "unit.h"

int unit_passed, unit_failed;

int main(void) {
  test_notify();
  printf("%d passed, %d failed\n", unit_passed, unit_failed);
  return unit_failed > 0;
}
