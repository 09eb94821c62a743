#ifndef DISTILL_CMPI_SHIM_H
#define DISTILL_CMPI_SHIM_H

// Open MPI, loaded at run time.
//
// No MPI header or library is needed to build this: `distill_mpi_load` dlopens libmpi and
// resolves the functions below plus Open MPI's predefined handles, which in Open MPI's
// mpi.h are macros over the addresses of global objects (MPI_COMM_WORLD is
// `&ompi_mpi_comm_world`, MPI_FLOAT `&ompi_mpi_float`, MPI_SUM `&ompi_mpi_op_sum`). Those
// names are Open MPI's ABI (libmpi.so.40, Open MPI 3.0 to 5.x); MPICH-family libraries use
// integer handles and are refused at load time.
//
// Every call is serialised by one lock, because MPI is initialised with
// MPI_THREAD_SERIALIZED: any thread may call, one at a time. Functions return MPI's error
// code (0 is success) or DISTILL_MPI_NOT_READY when the library is not loaded or
// initialised.

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Returned when libmpi is not loaded, not initialised, or already finalised.
#define DISTILL_MPI_NOT_READY (-1)

/// Loads the library at `path` (a file name searched as dlopen does, or a path) and resolves
/// every symbol. Returns 0, or -1 with a reason in `message`. Idempotent once it succeeded.
int distill_mpi_load(const char *path, char *message, size_t capacity);

/// Calls MPI_Init_thread (MPI_THREAD_SERIALIZED), makes MPI_COMM_WORLD return errors instead
/// of aborting, and registers an atexit handler that finalises MPI if the program did not.
/// Writes the rank and size of MPI_COMM_WORLD. Returns an MPI error code, or -1 (see
/// `message`) when the thread level granted is below MPI_THREAD_SERIALIZED.
int distill_mpi_initialize(int *rank, int *size, char *message, size_t capacity);

/// The library's own version line (MPI_Get_library_version), empty before loading.
void distill_mpi_library_version(char *buffer, size_t capacity);

/// MPI's text for an error code returned by the functions below.
void distill_mpi_error_string(int code, char *buffer, size_t capacity);

/// In-place MPI_Allreduce with MPI_SUM over MPI_COMM_WORLD; any count (split below INT_MAX).
int distill_mpi_allreduce_sum_float(float *buffer, size_t count);
int distill_mpi_allreduce_sum_double(double *buffer, size_t count);

/// MPI_Bcast of `count` bytes from `root` over MPI_COMM_WORLD; any count.
int distill_mpi_broadcast_bytes(void *buffer, size_t count, int root);

/// MPI_Barrier over MPI_COMM_WORLD.
int distill_mpi_barrier(void);

/// MPI_Finalize, once; later calls and the atexit handler do nothing.
int distill_mpi_finalize(void);

/// MPI_Abort over MPI_COMM_WORLD: ends every rank of the job with `code`. Does not return.
void distill_mpi_abort(int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif
