/* sagas.h - the shop's saga types (DESIGN §4: business flows live outside
 * engine/), one file each in sagas/, and the one list the orchestrator
 * registers. docs/SAGAS.md "Adding a saga type" lists the exact touches.
 *
 * Ownership: static const tables; sagas_duration_ms() returns a number.
 * Threads:   read-only tables; sagas_duration_ms() is reentrant.
 */
#ifndef LAYBY_SAGAS_SAGAS_H
#define LAYBY_SAGAS_SAGAS_H

#include "engine/saga.h"

/* Every business saga type and version the orchestrator runs, NULL last
 * (sagas_n_all does not count it). Keep a version listed until no saga
 * started on it is unfinished. */
extern const saga_type *const sagas_all[];
extern const size_t sagas_n_all;

/* A duration rule of DESIGN §6, read when a saga starts (a step's
 * .duration calls it): the variable `env` if set (cfg_duration_parse(): "30m",
 * "20s"), else fast_ms when LAYBY_FAST=1, else normal_ms. A malformed value
 * is ignored like an unset one. */
int64_t sagas_duration_ms(const char *env, int64_t normal_ms, int64_t fast_ms);

#endif
