#include "CMPIShim.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Open MPI's handles are pointers to opaque structs; the shim passes them as void *.
typedef void *Handle;

enum { THREAD_SERIALIZED = 2 };  // MPI_THREAD_SERIALIZED in every Open MPI mpi.h
enum { VERSION_CAPACITY = 4096 };  // above MPI_MAX_LIBRARY_VERSION_STRING (256)
static const size_t CHUNK = (size_t)1 << 30;  // elements per call: MPI counts are int

static struct {
  int (*Initialized)(int *);
  int (*Finalized)(int *);
  int (*Init_thread)(int *, char ***, int, int *);
  int (*Comm_rank)(Handle, int *);
  int (*Comm_size)(Handle, int *);
  int (*Comm_set_errhandler)(Handle, Handle);
  int (*Allreduce)(const void *, void *, int, Handle, Handle, Handle);
  int (*Bcast)(void *, int, Handle, int, Handle);
  int (*Barrier)(Handle);
  int (*Finalize)(void);
  int (*Abort)(Handle, int);
  int (*Error_string)(int, char *, int *);
  int (*Get_library_version)(char *, int *);
  Handle commWorld, typeFloat, typeDouble, typeByte, opSum, errorsReturn;
} mpi;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
// `owned`: this shim called MPI_Init_thread, so it (not the host program) finalises.
static int loaded = 0, initialized = 0, owned = 0, finished = 0;

static void copy(char *destination, size_t capacity, const char *source) {
  if (capacity == 0) return;
  snprintf(destination, capacity, "%s", source ? source : "");
}

static int resolve(void *library, const char *name, void **slot, char *message, size_t capacity) {
  *slot = dlsym(library, name);
  if (*slot == NULL) {
    char text[512];
    snprintf(text, sizeof text, "symbol %s not found (%s)%s", name, dlerror(),
             strncmp(name, "ompi_", 5) == 0 ? ": not an Open MPI library" : "");
    copy(message, capacity, text);
    return -1;
  }
  return 0;
}

int distill_mpi_load(const char *path, char *message, size_t capacity) {
  pthread_mutex_lock(&lock);
  if (loaded) {
    pthread_mutex_unlock(&lock);
    return 0;
  }
  // RTLD_GLOBAL: Open MPI dlopens its own components, which expect libmpi's symbols.
  void *library = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
  if (library == NULL) {
    copy(message, capacity, dlerror());
    pthread_mutex_unlock(&lock);
    return -1;
  }
  // MPI_<name> into mpi.<name>, then Open MPI's predefined handles.
#define FUNCTION(name) {"MPI_" #name, (void **)&mpi.name}
  struct { const char *name; void **slot; } table[] = {
    FUNCTION(Initialized), FUNCTION(Finalized), FUNCTION(Init_thread), FUNCTION(Comm_rank), FUNCTION(Comm_size),
    FUNCTION(Comm_set_errhandler), FUNCTION(Allreduce), FUNCTION(Bcast), FUNCTION(Barrier), FUNCTION(Finalize),
    FUNCTION(Abort), FUNCTION(Error_string), FUNCTION(Get_library_version),
    {"ompi_mpi_comm_world", &mpi.commWorld}, {"ompi_mpi_float", &mpi.typeFloat}, {"ompi_mpi_double", &mpi.typeDouble},
    {"ompi_mpi_byte", &mpi.typeByte}, {"ompi_mpi_op_sum", &mpi.opSum}, {"ompi_mpi_errors_return", &mpi.errorsReturn},
  };
#undef FUNCTION
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    if (resolve(library, table[i].name, table[i].slot, message, capacity) != 0) {
      memset(&mpi, 0, sizeof mpi);
      dlclose(library);
      pthread_mutex_unlock(&lock);
      return -1;
    }
  }
  loaded = 1;
  pthread_mutex_unlock(&lock);
  return 0;
}

static void finalize_at_exit(void) { distill_mpi_finalize(); }

int distill_mpi_initialize(int *rank, int *size, char *message, size_t capacity) {
  pthread_mutex_lock(&lock);
  int code = DISTILL_MPI_NOT_READY;
  if (!loaded || finished) {
    copy(message, capacity, loaded ? "MPI was already finalised" : "libmpi is not loaded");
    goto done;
  }
  if (!initialized) {
    int already = 0, provided = 0;
    mpi.Initialized(&already);
    if (!already) {
      code = mpi.Init_thread(NULL, NULL, THREAD_SERIALIZED, &provided);
      if (code != 0) {
        copy(message, capacity, "MPI_Init_thread failed");
        goto done;
      }
      initialized = 1;
      owned = 1;
      atexit(finalize_at_exit);
      if (provided < THREAD_SERIALIZED) {
        char text[160];
        snprintf(text, sizeof text, "MPI_Init_thread granted thread level %d, below MPI_THREAD_SERIALIZED (%d)",
                 provided, THREAD_SERIALIZED);
        copy(message, capacity, text);
        code = DISTILL_MPI_NOT_READY;
        goto done;
      }
    } else {
      initialized = 1;  // the host program initialised MPI; it finalises too
    }
    code = mpi.Comm_set_errhandler(mpi.commWorld, mpi.errorsReturn);
    if (code != 0) goto done;
  }
  code = mpi.Comm_rank(mpi.commWorld, rank);
  if (code == 0) code = mpi.Comm_size(mpi.commWorld, size);
done:
  pthread_mutex_unlock(&lock);
  return code;
}

void distill_mpi_library_version(char *buffer, size_t capacity) {
  char text[VERSION_CAPACITY] = "";
  int length = 0;
  pthread_mutex_lock(&lock);
  if (loaded) mpi.Get_library_version(text, &length);  // allowed before MPI_Init
  pthread_mutex_unlock(&lock);
  // Keep the first line: Open MPI appends its repository revision and release date.
  char *newline = strchr(text, '\n');
  if (newline) *newline = '\0';
  copy(buffer, capacity, text);
}

void distill_mpi_error_string(int code, char *buffer, size_t capacity) {
  char text[VERSION_CAPACITY] = "";
  int length = 0;
  if (code == DISTILL_MPI_NOT_READY) {
    copy(buffer, capacity, "MPI is not loaded, not initialised, or already finalised");
    return;
  }
  pthread_mutex_lock(&lock);
  if (!loaded || mpi.Error_string(code, text, &length) != 0) snprintf(text, sizeof text, "MPI error %d", code);
  pthread_mutex_unlock(&lock);
  copy(buffer, capacity, text);
}

static int ready(void) { return loaded && initialized && !finished; }

// An in-place sum over every rank (allreduce) or a copy of root's buffer to every rank
// (broadcast), in calls of at most CHUNK elements; the first failing call's code is returned.
static int chunked(int broadcast, void *buffer, size_t count, size_t width, Handle type, int root) {
  int code = DISTILL_MPI_NOT_READY;
  pthread_mutex_lock(&lock);
  if (ready()) {
    code = 0;
    for (size_t start = 0; start < count && code == 0; start += CHUNK) {
      size_t n = count - start < CHUNK ? count - start : CHUNK;
      char *chunk = (char *)buffer + start * width;
      code = broadcast ? mpi.Bcast(chunk, (int)n, type, root, mpi.commWorld)
                       : mpi.Allreduce((const void *)1 /* MPI_IN_PLACE */, chunk, (int)n, type, mpi.opSum,
                                       mpi.commWorld);
    }
  }
  pthread_mutex_unlock(&lock);
  return code;
}

int distill_mpi_allreduce_sum_float(float *buffer, size_t count) {
  return chunked(0, buffer, count, sizeof(float), mpi.typeFloat, 0);
}

int distill_mpi_allreduce_sum_double(double *buffer, size_t count) {
  return chunked(0, buffer, count, sizeof(double), mpi.typeDouble, 0);
}

int distill_mpi_broadcast_bytes(void *buffer, size_t count, int root) {
  return chunked(1, buffer, count, 1, mpi.typeByte, root);
}

int distill_mpi_barrier(void) {
  int code = DISTILL_MPI_NOT_READY;
  pthread_mutex_lock(&lock);
  if (ready()) code = mpi.Barrier(mpi.commWorld);
  pthread_mutex_unlock(&lock);
  return code;
}

int distill_mpi_finalize(void) {
  int code = 0;
  pthread_mutex_lock(&lock);
  if (loaded && initialized && !finished) {
    int done = 0;
    mpi.Finalized(&done);
    if (owned && !done) code = mpi.Finalize();
    finished = 1;
  }
  pthread_mutex_unlock(&lock);
  return code;
}

void distill_mpi_abort(int code) {
  // No lock: another thread may hold it inside a collective that will never complete.
  if (loaded && initialized && !finished) mpi.Abort(mpi.commWorld, code);
  _exit(code);
}
