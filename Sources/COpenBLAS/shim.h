/* The CBLAS declarations of OpenBLAS (libopenblas-dev: cblas.h, found through pkg-config openblas). */
#include <cblas.h>
