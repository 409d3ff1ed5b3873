/*
 * store_wal.h - the WAL check store_sqlite.c runs before SQLite opens the
 * database (store_wal.c says what it looks for).
 */
#ifndef PR_STORE_WAL_H
#define PR_STORE_WAL_H

/*
 * Before SQLite opens the database at path (resolved: symbolic links
 * followed, as SQLite will; name is the path as configured, for log
 * lines), tell what SQLite's WAL recovery will drop from path-wal, and
 * keep a copy of a WAL whose loss drops committed transactions (once per
 * WAL, beside it). Results go to the log only; nothing fails. Both
 * strings stay the caller's and are not kept after the call; nothing is
 * allocated for the caller to free.
 *
 * Call it before this process opens the database: it closes a descriptor
 * of path-shm, which drops every POSIX lock the process holds on that
 * file. A WAL another process has open is not checked.
 */
void pr_store_wal_check(const char *name, const char *path);

#endif
