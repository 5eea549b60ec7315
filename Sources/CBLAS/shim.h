// OpenBLAS's C interface. Debian puts cblas.h under the multiarch include folder.
#include <cblas.h>
// Not in every cblas.h: OpenBLAS's own thread control.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
