/*
 * thread.c — what a thread may ask of the scheduler about itself (Linux: per-thread nice).
 */
#define _GNU_SOURCE /* syscall, SYS_gettid */

#include "util/util.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

int tdm__thread_nice(int nice)
{
#ifdef __linux__
    /* On Linux a nice value belongs to a thread, not to the process (setpriority(2), BUGS):
     * PRIO_PROCESS with the thread's id sets this thread's alone. */
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice) == 0 ? 0 : -1;
#else
    (void)nice;
    return -1;
#endif
}
