/* tsupport.c - environment access for the suites (see tsupport.h). */
#include "tsupport.h"

#include <stdlib.h>

const char *
tsupport_env(const char *name)
{
    const char *v = getenv(name);
    return (v != NULL && v[0] != '\0') ? v : NULL;
}
