/* tsupport.h - helpers shared by the integration and end-to-end suites.
 *
 * The servers are started once per run by tests/support/harness.sh, which
 * exports their addresses; these helpers read them, give each test clean
 * state and start/stop daemons built by this tree.
 *
 * Ownership: returned strings are static or borrowed from the environment.
 * Threads:   test code only, one test at a time.
 */
#ifndef LAYBY_TESTS_SUPPORT_TSUPPORT_H
#define LAYBY_TESTS_SUPPORT_TSUPPORT_H

#include <stdbool.h>

/* Value of an environment variable the harness exports, or NULL. */
const char *tsupport_env(const char *name);

#endif
