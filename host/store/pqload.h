/* libpq, loaded when a store on PostgreSQL is first opened rather than
 * linked into the ndf binary: libpq pulls in some twenty libraries (TLS,
 * Kerberos, LDAP) whose loading and relocation cost every ndf process,
 * SQLite ones included, more than the rest of a one-shot run.  store_pg.c
 * includes this header after <libpq-fe.h>; its PQ* calls then go through
 * the table below, filled by pq_load(). */
#ifndef NDF_STORE_PQLOAD_H
#define NDF_STORE_PQLOAD_H

#include <stddef.h>

#include <libpq-fe.h>

/* The soname loaded; libpq's has been .5 since PostgreSQL 8.2.  A build
 * may override it with -DNDF_LIBPQ_SONAME='"..."'. */
#ifndef NDF_LIBPQ_SONAME
#define NDF_LIBPQ_SONAME "libpq.so.5"
#endif

/* Every libpq function store_pg.c calls: one line here and one #define
 * below for a new one (a call missing from both is an undefined
 * reference when ndf is linked). */
#define PQLOAD_FUNCS(X)                                                                            \
    X(PQclear)                                                                                     \
    X(PQcmdTuples)                                                                                 \
    X(PQconsumeInput)                                                                              \
    X(PQconnectdbParams)                                                                           \
    X(PQconnectPoll)                                                                               \
    X(PQconnectStartParams)                                                                        \
    X(PQdb)                                                                                        \
    X(PQerrorMessage)                                                                              \
    X(PQexec)                                                                                      \
    X(PQexecParams)                                                                                \
    X(PQexecPrepared)                                                                              \
    X(PQfinish)                                                                                    \
    X(PQfreemem)                                                                                   \
    X(PQgetResult)                                                                                 \
    X(PQgetlength)                                                                                 \
    X(PQgetisnull)                                                                                 \
    X(PQgetvalue)                                                                                  \
    X(PQisBusy)                                                                                    \
    X(PQhost)                                                                                      \
    X(PQnotifies)                                                                                  \
    X(PQntuples)                                                                                   \
    X(PQport)                                                                                      \
    X(PQprepare)                                                                                   \
    X(PQputCopyData)                                                                               \
    X(PQputCopyEnd)                                                                                \
    X(PQresultErrorField)                                                                          \
    X(PQresultErrorMessage)                                                                        \
    X(PQresultStatus)                                                                              \
    X(PQsendQuery)                                                                                 \
    X(PQsetNoticeProcessor)                                                                        \
    X(PQsocket)                                                                                    \
    X(PQstatus)                                                                                    \
    X(PQtransactionStatus)                                                                         \
    X(PQunescapeBytea)                                                                             \
    X(PQuser)

typedef struct pq_api {
#define PQLOAD_FIELD(f) __typeof__(&f) f;
    PQLOAD_FUNCS(PQLOAD_FIELD)
#undef PQLOAD_FIELD
} pq_api;

/* Filled once by pq_load(); read only after it returned NDF_OK. */
extern pq_api pq_fn;

/* Loads NDF_LIBPQ_SONAME and resolves every function, once per process
 * (later calls return the first one's result; thread-safe).  NDF_OK, or
 * NDF_ERR_IO (a storage error, like a database that cannot be reached)
 * with a message naming the library, dlerror()'s reason
 * and the package to install.  The library stays loaded until exit. */
int pq_load(void);

/* What pq_load() does, on library `soname` into `api`, without touching
 * pq_fn: for tests of its failures.  The handle is closed on failure and
 * kept on success. */
int pq_load_from(const char *soname, pq_api *api);

#ifndef PQLOAD_NO_MACROS
#define PQclear pq_fn.PQclear
#define PQconnectPoll pq_fn.PQconnectPoll
#define PQconnectStartParams pq_fn.PQconnectStartParams
#define PQisBusy pq_fn.PQisBusy
#define PQsendQuery pq_fn.PQsendQuery
#define PQsocket pq_fn.PQsocket
#define PQnotifies pq_fn.PQnotifies
#define PQgetlength pq_fn.PQgetlength
#define PQconsumeInput pq_fn.PQconsumeInput
#define PQcmdTuples pq_fn.PQcmdTuples
#define PQconnectdbParams pq_fn.PQconnectdbParams
#define PQdb pq_fn.PQdb
#define PQerrorMessage pq_fn.PQerrorMessage
#define PQexec pq_fn.PQexec
#define PQexecParams pq_fn.PQexecParams
#define PQexecPrepared pq_fn.PQexecPrepared
#define PQfinish pq_fn.PQfinish
#define PQfreemem pq_fn.PQfreemem
#define PQgetResult pq_fn.PQgetResult
#define PQgetisnull pq_fn.PQgetisnull
#define PQgetvalue pq_fn.PQgetvalue
#define PQhost pq_fn.PQhost
#define PQntuples pq_fn.PQntuples
#define PQport pq_fn.PQport
#define PQprepare pq_fn.PQprepare
#define PQputCopyData pq_fn.PQputCopyData
#define PQputCopyEnd pq_fn.PQputCopyEnd
#define PQresultErrorField pq_fn.PQresultErrorField
#define PQresultErrorMessage pq_fn.PQresultErrorMessage
#define PQresultStatus pq_fn.PQresultStatus
#define PQsetNoticeProcessor pq_fn.PQsetNoticeProcessor
#define PQstatus pq_fn.PQstatus
#define PQtransactionStatus pq_fn.PQtransactionStatus
#define PQunescapeBytea pq_fn.PQunescapeBytea
#define PQuser pq_fn.PQuser
#endif

#endif
