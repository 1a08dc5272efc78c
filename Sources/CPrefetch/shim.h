// The cache prefetch hint, which Swift does not expose: the kernels ask for weights a few
// hundred bytes ahead of the ones they multiply, so more memory reads are in flight than the
// hardware prefetchers start on their own.

/// Starts loading the cache line at `p` (for reading, into all cache levels).
static inline void cprefetch(const void *p) { __builtin_prefetch(p, 0, 3); }
