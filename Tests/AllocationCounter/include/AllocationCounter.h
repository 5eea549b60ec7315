// Counts the heap allocations each thread makes, for the tests that check that decoding allocates nothing. The
// test executable's malloc, calloc, realloc and aligned_alloc take precedence over the C library's (symbol
// interposition) and forward to it.
#pragma once

/// Allocations made so far by the calling thread.
long loraswitch_thread_allocations(void);
