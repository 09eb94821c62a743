#ifndef DISTILL_CJPEG_SHIM_H
#define DISTILL_CJPEG_SHIM_H
#include <stdio.h>
#include <jpeglib.h>
#endif
