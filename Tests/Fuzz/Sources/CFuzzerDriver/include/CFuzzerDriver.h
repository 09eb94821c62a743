#ifndef DISTILL_CFUZZERDRIVER_H
#define DISTILL_CFUZZERDRIVER_H

#include <stddef.h>
#include <stdint.h>

/* libFuzzer's driver (compiler-rt, FuzzerDriver.cpp), linked by -sanitize=fuzzer: parses the
   libFuzzer flags in argv and runs `callback` on each input. */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
