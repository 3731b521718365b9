/* saga_internal.h - helpers the saga_*.c files share and nobody else needs.
 *
 * Ownership: returned descriptors are static (generated code).
 * Threads:   reentrant.
 */
#ifndef LAYBY_ENGINE_SAGA_INTERNAL_H
#define LAYBY_ENGINE_SAGA_INTERNAL_H

#include "saga.h"

/* The event type of t with this full protobuf name ("layby.v1.TestStepDone"),
 * among every step's four events; NULL if t receives no such event. */
const ProtobufCMessageDescriptor *saga__event_find(const saga_type *t, const char *full_name);

#endif
