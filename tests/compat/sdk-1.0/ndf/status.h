/* ndf SDK: status codes shared by the host and its plugins.
 *
 * Every SDK call that can fail returns NDF_OK (0) or one of the negative codes
 * below, which mirror the seed's exception hierarchy.  The message that goes
 * with a failure is set through ndf_host.fail() and read by the host. */
#ifndef NDF_STATUS_H
#define NDF_STATUS_H

typedef enum ndf_status {
    NDF_OK = 0,
    NDF_ERR_NOT_FOUND = -1,   /* PatternNotFoundError */
    NDF_ERR_EXISTS = -2,      /* PatternAlreadyExistsError */
    NDF_ERR_INVALID = -3,     /* InvalidPatternError */
    NDF_ERR_VALIDATION = -4,  /* PatternValidationError */
    NDF_ERR_EXECUTION = -5,   /* PatternExecutionError */
    NDF_ERR_CONFIDENCE = -6,  /* ConfidenceThresholdError */
    NDF_ERR_RESOURCE = -7,    /* ResourceExhaustionError */
    NDF_ERR_TIMEOUT = -8,     /* TimeoutError */
    NDF_ERR_NOMEM = -9,       /* out of memory */
    NDF_ERR_IO = -10,         /* a system call failed; the message says which */
    NDF_ERR_CANCELLED = -11   /* stopped on request (ndf ctl cancel, shutdown) */
} ndf_status;

/* The lowest code this ABI version defines; a host or plugin seeing a code
 * below it treats it as NDF_ERR_EXECUTION. */
#define NDF_STATUS_MIN NDF_ERR_CANCELLED

/* A short, stable, lower-case name for a status ("not found", ...). */
static inline const char *ndf_status_name(int status)
{
    switch (status) {
    case NDF_OK: return "ok";
    case NDF_ERR_NOT_FOUND: return "not found";
    case NDF_ERR_EXISTS: return "already exists";
    case NDF_ERR_INVALID: return "invalid";
    case NDF_ERR_VALIDATION: return "validation failed";
    case NDF_ERR_EXECUTION: return "execution failed";
    case NDF_ERR_CONFIDENCE: return "confidence below threshold";
    case NDF_ERR_RESOURCE: return "resources exhausted";
    case NDF_ERR_TIMEOUT: return "timed out";
    case NDF_ERR_NOMEM: return "out of memory";
    case NDF_ERR_IO: return "I/O error";
    case NDF_ERR_CANCELLED: return "cancelled";
    default: return "unknown error";
    }
}

#endif
