/* fuzz.h - what every fuzz target (fuzz/fuzz_*.c) shares.
 *
 * A target is one libFuzzer entry point plus an optional one-time set-up.
 * Built with clang and -fsanitize=fuzzer (LAYBY_FUZZ=ON) it is a fuzzer;
 * built with any compiler and fuzz/replay_main.c it replays files, which is
 * how the committed corpora and every crash found run as unit tests
 * (fuzz/CMakeLists.txt). A broken invariant is fuzz_fail(): a message and
 * abort(), which libFuzzer reports as a crash and keeps the input.
 *
 * Ownership: fuzz_es256_* buffers are the caller's.
 * Threads:   one thread, as libFuzzer runs a target.
 */
#ifndef LAYBY_FUZZ_FUZZ_H
#define LAYBY_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reports a broken invariant and aborts. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A P-256 key made once per process; its public half as PEM ("PUBLIC KEY"). */
const char *fuzz_es256_public_pem(void);
/* Signs header and payload (JSON text, any bytes) into a compact ES256 JWS:
 * base64url(header).base64url(payload).base64url(R||S). 0 on success, -1
 * when it does not fit in n bytes. */
int fuzz_es256_sign(char *out, size_t n, const char *header, size_t header_len, const char *payload,
                    size_t payload_len);

/* A NUL-terminated malloc'd copy of data[0..len). */
char *fuzz_strndup(const uint8_t *data, size_t len);

#endif
