// The module is its header (static inline functions); a C target needs one source file.
#include "CPrefetch.h"
