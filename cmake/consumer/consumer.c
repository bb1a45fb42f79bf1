/* A user of an installed libflink: prints what it sees, fails on a mismatch. */
#include <flink.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
  const char *v = fl_version_str();
  const char *msg = fl_strerror(FL_EINVAL);

  if (v == NULL || strcmp(v, FL_EXPECT_VERSION) != 0) {
    fprintf(stderr, "consumer: version %s, expected %s\n", v ? v : "(null)",
            FL_EXPECT_VERSION);
    return 1;
  }
  if (msg == NULL || msg[0] == '\0') {
    fprintf(stderr, "consumer: fl_strerror(FL_EINVAL) is empty\n");
    return 1;
  }
  printf("consumer: libflink %s ok\n", v);
  return 0;
}
