/* An LD_PRELOAD shim for the DeepSpeech client check (scripts/ds/reference.py): records every
 * call of libm's log(double) with its caller address, so that the client library's own MFCC
 * filterbank energies and per-frame class probabilities (the decoder takes log(p + FLT_MIN) of
 * each) can be compared with Harken's. The library exposes neither through its API. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
static double (*real_log)(double);
static FILE *out;
double log(double x) {
  if (!real_log) real_log = (double (*)(double))dlsym(RTLD_NEXT, "log");
  if (!out) { const char *p = getenv("DS_LOG_TRACE"); if (p) out = fopen(p, "wb"); }
  if (out) { void *ra = __builtin_return_address(0); fwrite(&ra, 8, 1, out); fwrite(&x, 8, 1, out); }
  return real_log(x);
}
