/* Test-only LD_PRELOAD library: makes chosen file-system calls on chosen files fail, so that the
 * end-to-end tests can fail a checkpoint or metrics write at each stage the way a full disk, a
 * quota or a dying file server does, without a hook in rewarm itself.
 *
 *   REWARM_FAULT_PATH   substring of the paths to act on (e.g. "step_00000040.h5.tmp")
 *   REWARM_FAULT_CALL   open | write | fsync | rename | close | ftruncate
 *   REWARM_FAULT_AFTER  calls of that kind on those paths that succeed first (default 0)
 *   REWARM_FAULT_ERRNO  errno of the failure (default 28, ENOSPC); every later call fails too
 *   REWARM_FAULT_COUNT  if set: a file to which the matching calls of each kind are counted
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

enum { MAX_FD = 4096 };
static char matching_fd[MAX_FD];  /* fds opened on a matching path */
static long calls[6];
static const char* kinds[6] = {"open", "write", "fsync", "rename", "close", "ftruncate"};

static int matches(const char* path) {
  const char* want = getenv("REWARM_FAULT_PATH");
  return want && path && strstr(path, want) != NULL;
}

/* 1 when this call (kind k on a matching file) must fail; counts it. */
static int inject(int k) {
  const char* call = getenv("REWARM_FAULT_CALL");
  const long n = calls[k]++;
  if (!call || strcmp(call, kinds[k]) != 0) return 0;
  const char* after = getenv("REWARM_FAULT_AFTER");
  if (n < (after ? atol(after) : 0)) return 0;
  const char* e = getenv("REWARM_FAULT_ERRNO");
  errno = e ? atoi(e) : ENOSPC;
  return 1;
}

static int fd_matches(int fd) { return fd >= 0 && fd < MAX_FD && matching_fd[fd]; }

__attribute__((destructor)) static void report(void) {
  const char* out = getenv("REWARM_FAULT_COUNT");
  if (!out) return;
  FILE* f = fopen(out, "a");
  if (!f) return;
  for (int k = 0; k < 6; ++k) fprintf(f, "%s %ld\n", kinds[k], calls[k]);
  fclose(f);
}

#define REAL(name) \
  static __typeof__(&name) real_##name;  \
  if (!real_##name) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

static int opened(int fd, const char* path) {
  if (fd >= 0 && fd < MAX_FD) matching_fd[fd] = (char)matches(path);
  return fd;
}

int open(const char* path, int flags, ...) {
  REAL(open);
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
  va_end(ap);
  if (matches(path) && inject(0)) return -1;
  return opened(real_open(path, flags, mode), path);
}

int open64(const char* path, int flags, ...) {  /* the same call on 64-bit Linux: one policy */
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
  va_end(ap);
  return open(path, flags, mode);
}

ssize_t write(int fd, const void* buf, size_t n) {
  REAL(write);
  if (fd_matches(fd) && inject(1)) return -1;
  return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t at) {
  REAL(pwrite);
  if (fd_matches(fd) && inject(1)) return -1;
  return real_pwrite(fd, buf, n, at);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off_t at) {
  REAL(pwrite64);
  if (fd_matches(fd) && inject(1)) return -1;
  return real_pwrite64(fd, buf, n, at);
}

int fsync(int fd) {
  REAL(fsync);
  if (fd_matches(fd) && inject(2)) return -1;
  return real_fsync(fd);
}

int fdatasync(int fd) {
  REAL(fdatasync);
  if (fd_matches(fd) && inject(2)) return -1;
  return real_fdatasync(fd);
}

int rename(const char* from, const char* to) {
  REAL(rename);
  if ((matches(from) || matches(to)) && inject(3)) return -1;
  return real_rename(from, to);
}

int close(int fd) {
  REAL(close);
  const int m = fd_matches(fd);
  if (fd >= 0 && fd < MAX_FD) matching_fd[fd] = 0;
  if (m && inject(4)) {
    real_close(fd);  /* as NFS does: the descriptor is gone, the error is what the last writes met */
    return -1;
  }
  return real_close(fd);
}

int ftruncate(int fd, off_t size) {
  REAL(ftruncate);
  if (fd_matches(fd) && inject(5)) return -1;
  return real_ftruncate(fd, size);
}
