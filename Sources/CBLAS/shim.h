#ifndef DISTILL_CBLAS_SHIM_H
#define DISTILL_CBLAS_SHIM_H
#include <cblas.h>
/* OpenBLAS extensions, declared here so that Swift can size its thread pool. */
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);
char *openblas_get_corename(void);
/* LAPACK (in libopenblas): eigenvalues and eigenvectors of a symmetric matrix. */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info);
#endif
