#ifndef LORASWITCH_CPREFETCH_H
#define LORASWITCH_CPREFETCH_H

// Software prefetch for the Swift kernels: __builtin_prefetch is a compiler builtin that Swift cannot call, and
// _mm_prefetch is a macro that Swift does not import.

/// Asks for the 64-byte line at `address` to be brought into the L2 cache (prefetcht1); never faults.
static inline __attribute__((always_inline)) void lsPrefetchL2(const void *address) {
    __builtin_prefetch(address, 0, 2);
}

#endif
