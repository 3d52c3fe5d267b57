/*
 * files.h: what the engine needs from the file system, in plain C on top of
 * platform.h (no Lua, no libcurl): where a destination really is and what kind of file
 * it is, the short temporary names beside it, the removal of temporary files
 * that dead processes left, and the resume part and its validator.
 */
#ifndef DT_FILES_H
#define DT_FILES_H

#include <stddef.h>
#include <stdint.h>

enum {
  DEST_NEW,     /* nothing there yet: a temporary file is renamed onto it */
  DEST_REGULAR, /* a regular file: replaced the same way, keeping its permission bits */
  DEST_INPLACE  /* a FIFO or a character device: written in place, never replaced */
};

typedef struct dest_info {
  char *path; /* absolute, its directory canonical, symlinks followed: the file written */
  char *dir;  /* the directory of path */
  const char *base; /* the last component of path (points into it) */
  int kind;
} dest_info;

/* Where file_path leads (symlinks followed to their final target) and what
 * is there. 0, or -1 with *err (a DT_ERR_*) and a reason naming the path. */
int files_resolve(const char *file_path, dest_info *d, int *err, char *reason, size_t n);
void files_dest_free(dest_info *d);

/* The working directory (malloc'd), or NULL. A relative filePath is taken
 * from the one of the downloadFile call, not of the moment it starts. */
char *files_cwd(void);
/* "<dir>/<name>" (malloc'd), or NULL. */
char *files_join(const char *dir, const char *name);
/* The directories `mkdir -p` made: path's first ends[i] bytes, each one
 * mkdir created (not one that was there, also when ".." led back to it). */
typedef struct files_made {
  char *path;
  size_t *ends;
  int n;
} files_made;

/* `mkdir -p` of file_path's directory (0777 & ~umask), before files_resolve.
 * 0, or -1 with *err and a reason naming the directory that could not be.
 * What it made is added to *made (empty: {0}) when *made holds nothing yet
 * (out of memory: then they stay). */
int files_make_dirs(const char *file_path, files_made *made, int *err, char *reason, size_t n);
/* Removes what files_make_dirs made, deepest first, while each is empty
 * (another download may have put a file there); then forgets it. */
void files_unmake_dirs(files_made *made);
/* Forgets it, removing nothing. */
void files_made_free(files_made *made);

/* Removes, at most once a minute per directory, the temporary files of
 * processes of this host that no longer run. `cache` belongs to the caller
 * (one per engine thread). */
typedef struct files_scans {
  struct { char *dir; double at; } slot[16];
  int next;
} files_scans;
void files_sweep(files_scans *cache, const char *dir);
void files_scans_free(files_scans *cache);

/* Creates a new temporary file in dir exclusively (0666 & ~umask, or 0600
 * with PLAT_PRIVATE in flags; close-on-exec, never through a link):
 * "<dir>/.dt.<host>.<pid>.<rand>.tmp", a name files_sweep removes once its
 * process is gone. Returns the descriptor and sets *path, or -1 with errno. */
int files_temp(const char *dir, int flags, char **path);

/* A finished private body (a files_temp name in tempDir) takes the name it is
 * delivered under, "<its dir>/downloadtask-<8 hex digits>", which no sweep
 * touches: *path is renamed and replaced. 0, or -1 with errno (it keeps its
 * name then). */
int files_deliver_private(char **path);

/* The resume part of a destination and its info file:
 * "<dir>/.dt.<hash of the name>.part" and ".info". NULL: no memory. */
char *files_part_path(const dest_info *d, const char *suffix);

/* The validator (ETag or Last-Modified) the part was started with, or NULL
 * when there is none or the info file names another destination or is not a
 * record of this version (record.h). With ranges non-NULL, *ranges gets the
 * line of a segmented part's ranges (a pointer into the same allocation), or
 * NULL when the part has none; with length non-NULL, *length gets the
 * complete length the record keeps (-1: unknown). */
char *files_read_validator(const dest_info *d, const char **ranges, long long *length);
/* Records v and the complete length (v NULL: removes the info file). */
void files_write_validator(const dest_info *d, const char *v, long long length);
/* Records v, the complete length and a segmented part's ranges (one line, no newline in
 * it), by rename. */
void files_write_info(const dest_info *d, const char *v, long long length, const char *ranges);

/* Makes a directory's entries durable (after a rename). 0 or -1 with errno. */
int files_sync_dir(const char *dir);

/* "save file error: ..." or "permission denied: <path>" for errno e. */
int files_error(int e, const char *what, const char *path, char *reason, size_t n);

/* Random bits for names and jitter. */
unsigned files_rand(void);

#endif
