// Thread primitives Swift's Glibc module does not offer: the CPU's spin-wait hint, CPU
// affinity and thread names (GNU extensions).
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>

/// Tells the CPU this thread is polling a flag (x86 `pause`, Arm `yield`).
static inline void cthread_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// Restricts the calling thread to one CPU. Returns 0, or -1 with errno set.
static inline int cthread_pin_self(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return -1;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set);
}

/// The one CPU the calling thread is restricted to, or -1 if it may run on several.
static inline int cthread_pinned_cpu(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0 || CPU_COUNT(&set) != 1) return -1;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) if (CPU_ISSET(cpu, &set)) return cpu;
    return -1;
}

/// Writes the CPUs the calling thread may run on (ascending, at most `capacity`) to `cpus`;
/// returns how many, or -1 with errno set.
static inline int cthread_allowed_cpus(int *cpus, int capacity) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
    int count = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && count < capacity; cpu++) if (CPU_ISSET(cpu, &set)) cpus[count++] = cpu;
    return count;
}

/// Names the calling thread as `top -H` and /proc/PID/task/TID/comm show it (15 bytes at most).
static inline void cthread_name_self(const char *name) {
    pthread_setname_np(pthread_self(), name);
}
