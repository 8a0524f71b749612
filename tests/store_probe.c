/* The shell tests' view into a store: opens it as any ndf process does
 * (which marks executions of dead processes CRASHED) and reports what the
 * crash, fault and concurrency tests assert on.
 *
 *   store_probe DIR check   the invariants; prints one line of figures:
 *       executions=N top=T running=R crashed=C counted=K
 *     and exits 1 naming the first broken invariant: a pattern's count
 *     differs from its counted rows (store_check), an ended execution has
 *     no root node or a node of a RUNNING... (half-recorded), a node or
 *     output without its execution.
 *   store_probe DIR ids     the ids of every execution, one a line.
 *   store_probe DIR count PATTERN   the pattern's stored count.
 *
 * Exit 0 when all holds, 1 when an invariant is broken, 2 on usage or
 * when the store cannot be opened (message on stderr). */
#include "build-config.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

static long long scalar(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "store_probe: %s: %s\n", sql, sqlite3_errmsg(db));
        exit(2);
    }
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: store_probe DIR check|ids|count PATTERN\n");
        return 2;
    }
    store_opts o;
    store_opts_default(&o);
    o.import_legacy = 0;
    store *s;
    if (store_open(argv[1], &o, &s) != NDF_OK) {
        fprintf(stderr, "store_probe: %s\n", err_msg());
        return 2;
    }
    sqlite3 *db;
    if (sqlite3_open_v2(store_path(s), &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "store_probe: %s: %s\n", store_path(s), sqlite3_errmsg(db));
        return 2;
    }
    sqlite3_busy_timeout(db, 10000);
    int bad = 0;
    if (!strcmp(argv[2], "check")) {
        if (store_check(s) != NDF_OK) {
            fprintf(stderr, "store_probe: %s\n", err_msg());
            bad = 1;
        }
        static const struct {
            const char *what, *sql;
        } inv[] = {
            {"ended executions without their root node",
             "SELECT count(*) FROM executions e WHERE e.status <> 'RUNNING' AND NOT EXISTS"
             " (SELECT 1 FROM nodes n WHERE n.exec_seq = e.seq AND n.path = '')"},
            {"nodes without their execution",
             "SELECT count(*) FROM nodes n WHERE NOT EXISTS"
             " (SELECT 1 FROM executions e WHERE e.seq = n.exec_seq)"},
            {"outputs without their node",
             "SELECT count(*) FROM outputs o WHERE NOT EXISTS (SELECT 1 FROM nodes n"
             " WHERE n.exec_seq = o.exec_seq AND n.path = o.path)"},
            {"sub-pattern executions without their parent",
             "SELECT count(*) FROM executions c WHERE c.parent_id IS NOT NULL AND NOT EXISTS"
             " (SELECT 1 FROM executions p WHERE p.id = c.parent_id)"},
            {"ended executions still holding a RUNNING node",
             "SELECT count(*) FROM executions e WHERE e.status NOT IN ('RUNNING') AND EXISTS"
             " (SELECT 1 FROM nodes n WHERE n.exec_seq = e.seq AND n.state = 'RUNNING')"},
        };
        for (size_t i = 0; i < sizeof inv / sizeof inv[0]; i++) {
            long long n = scalar(db, inv[i].sql);
            if (n) {
                fprintf(stderr, "store_probe: %lld %s\n", n, inv[i].what);
                bad = 1;
            }
        }
        printf("executions=%lld top=%lld running=%lld crashed=%lld counted=%lld\n",
               scalar(db, "SELECT count(*) FROM executions"),
               scalar(db, "SELECT count(*) FROM executions WHERE parent_id IS NULL"),
               scalar(db, "SELECT count(*) FROM executions WHERE status = 'RUNNING'"),
               scalar(db, "SELECT count(*) FROM executions WHERE status = 'CRASHED'"),
               scalar(db, "SELECT coalesce(sum(executions), 0) FROM patterns"));
    } else if (!strcmp(argv[2], "ids")) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, "SELECT id FROM executions ORDER BY seq", -1, &st, NULL) !=
            SQLITE_OK) {
            fprintf(stderr, "store_probe: %s\n", sqlite3_errmsg(db));
            return 2;
        }
        while (sqlite3_step(st) == SQLITE_ROW)
            printf("%s\n", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    } else if (!strcmp(argv[2], "count") && argc == 4) {
        learning_state ls;
        if (store_learning(s, argv[3], &ls) == NDF_OK) {
            printf("%llu\n", (unsigned long long)ls.executions);
            learning_free(&ls);
        } else {
            printf("0\n");
        }
    } else {
        fprintf(stderr, "store_probe: unknown request '%s'\n", argv[2]);
        bad = 2;
    }
    sqlite3_close(db);
    store_close(s);
    return bad;
}
