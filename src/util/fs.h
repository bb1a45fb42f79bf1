/* Small file-system helpers shared by the runtime and the checkpoint code. */
#ifndef FL_UTIL_FS_H
#define FL_UTIL_FS_H

/* Deletes the directory tree at dir (files, then directories; symlinks are removed,
 * never followed). Best effort: what cannot be removed stays. "" does nothing. */
void fl_rm_tree(const char *dir);

#endif
