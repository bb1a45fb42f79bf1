/*
 * Helpers of the tests that work with files and run programs (test_examples.c,
 * test_flink_agg.c, test_lines.c): temporary directories, whole files, child processes
 * with their output in files, a FIFO a child reads, and comparing outputs as sorted
 * multisets of lines. Every helper fails the running cmocka test on an error it cannot
 * report otherwise.
 */
#ifndef FL_RUN_UTIL_H
#define FL_RUN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- Files and directories ---- */

/* A new directory $TMPDIR/<prefix>-XXXXXX (or under /tmp); the caller frees the path. */
char *make_tmpdir(const char *prefix);
/* cmocka group fixtures: a new temporary directory in g_tmpdir for the group's tests,
 * removed with what it holds afterwards. */
extern char *g_tmpdir;
int tmpdir_group_setup(void **state);
int tmpdir_group_teardown(void **state);
/* Removes path and everything below it; nothing if it does not exist. */
void rm_tree(const char *path);
void write_bytes(const char *path, const void *data, size_t len);
void write_text(const char *path, const char *text);
/* The whole file, NUL-terminated (the caller frees), its length in *len (len may be
 * NULL); NULL if the file cannot be opened. */
char *read_text(const char *path, size_t *len);
/* The file rel of the source tree ($FL_SOURCE_DIR, else .. of the build directory),
 * whole (the caller frees); fails the test when it cannot be read. */
char *read_source_file(const char *rel);
/* Fails the test unless the file at path holds needle (showing what it holds). */
void assert_file_contains(const char *path, const char *needle);

/* ---- Child processes ---- */

/* wait_program's result for a child killed by signal sig (an exit status is < 256). */
#define KILLED_BY(sig) (1000 + (sig))

/* $FL_BUILD_DIR/<sub>/<name>, ./<sub>/<name>, or <sub>/<name> next to the test binary:
 * the first that is an executable (the caller frees). Fails the test if none is. */
char *find_program(const char *sub, const char *name);
/* Starts argv[0] (a path) with argv, stdin from in (NULL: /dev/null), stdout and stderr
 * to the files out and err (truncated). The child is killed by SIGALRM after a minute
 * times FL_TEST_TIMEOUT_SCALE, so a hung program cannot hang the test. */
pid_t start_program(char *const argv[], const char *in, const char *out, const char *err);
/* Waits for the child: its exit status, or KILLED_BY(signal). */
int wait_program(pid_t pid);
/* Runs argv to its end and fails the test, showing stderr and the start of stdout,
 * unless its result (as wait_program's) is want. */
void run_expect(char *const argv[], const char *in, const char *out, const char *err, int want);
/* Fails the test if the child has already ended, showing the file err (its stderr). */
void assert_running(pid_t pid, const char *err);
/* Opens the FIFO for writing once the child pid opened it for reading, polling until
 * deadline_s seconds (times FL_TEST_TIMEOUT_SCALE) have passed. */
int open_fifo_writer(const char *fifo, pid_t pid, const char *err, int deadline_s);
void write_all(int fd, const void *data, size_t len);

/* ---- Lines ---- */

typedef struct lines {
  char **v;
  size_t n, cap;
} lines_t;

void lines_push(lines_t *l, const char *s, size_t len);
/* Adds every line of text; each must end with '\n'. */
void lines_add_text(lines_t *l, const char *text);
/* Adds every line of the file at path (fails the test if it cannot be read). */
void lines_add_file(lines_t *l, const char *path);
/* Adds the lines of the committed files of a file sink's directory: every file whose
 * name does not start with '.' (in-progress and pending files do). Returns how many
 * files there were (0 also when the directory does not exist yet). */
size_t lines_add_committed(lines_t *l, const char *dir);
/* How many committed files (as lines_add_committed reads) dir holds. */
size_t count_committed(const char *dir);
/* The order of lines_sort: a qsort / bsearch comparator of char * elements (strcmp). */
int cmp_str_ptr(const void *a, const void *b);
void lines_sort(lines_t *l);
void lines_free(lines_t *l);
/* Fails the test unless got and want hold the same lines in any order (a multiset),
 * showing what is missing and what is unexpected. Neither is changed. */
void assert_same_lines(const char *what, const lines_t *got, const char *const *want, size_t n);
/* The same for the lines of a text (each ending with '\n'). */
void assert_text_lines(const char *what, const char *got, const char *const *want, size_t n);

/* ---- This process ---- */

/* How many of this process's threads whose name starts with prefix run at the CPU
 * priority nice (RocksDB names its compaction threads "rocksdb:low"). */
int threads_at_nice(const char *prefix, int nice);
/* The calling thread's nice value (a test that looks for threads at nice 19 skips when
 * it runs there itself). */
int own_nice(void);

#endif
