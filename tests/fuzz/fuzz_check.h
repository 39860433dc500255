// Property checks inside fuzz targets: a violated property prints what was
// expected and aborts, which libFuzzer reports as a crash and saves the input
// (and which fails the ctest replay of the corpus).
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                               \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: fuzz property violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)
