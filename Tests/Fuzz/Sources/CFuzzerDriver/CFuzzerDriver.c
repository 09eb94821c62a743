/* Declarations only (see include/CFuzzerDriver.h); SwiftPM wants a source file per C target. */
#include "CFuzzerDriver.h"
