#include <stdlib.h>

#include "flink.h"

#define FL_STR_(x) #x
#define FL_XSTR_(x) FL_STR_(x)

const char *fl_version_str(void) {
  return FL_XSTR_(FL_VERSION_MAJOR) "." FL_XSTR_(FL_VERSION_MINOR) "." FL_XSTR_(FL_VERSION_PATCH);
}

const char *fl_strerror(int err) {
  switch (err) {
#define FL_ERR_MSG_(name, code, msg) \
  case code: return msg;
    FL_ERRNO_MAP(FL_ERR_MSG_)
#undef FL_ERR_MSG_
  default: return "unknown error";
  }
}

const char *fl_err_name(int err) {
  switch (err) {
#define FL_ERR_NAME_(name, code, msg) \
  case code: return #name;
    FL_ERRNO_MAP(FL_ERR_NAME_)
#undef FL_ERR_NAME_
  default: return "UNKNOWN";
  }
}

void fl_free(void *p) { free(p); }
