/* payment_gateway.c - the simulated card gateway (DESIGN §6). A real gateway
 * would be an HTTP call here; its answers are the same three kinds. */
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "payment.h"

payment_conf payment_settings;

typedef struct token_rule {
    const char *token;
    payment_verdict verdict;
    int64_t outages_first; /* > 0: an outage until this many outages happened for the order */
} token_rule;

/* clang-format off */
static const token_rule token_rules[] = {
    { "tok_decline", PAYMENT_DECLINED, 0 },
    { "tok_error",   PAYMENT_OUTAGE,   0 },
    { "tok_flaky",   PAYMENT_APPROVED, PAYMENT_FLAKY_FAILS },
};
/* clang-format on */

payment_verdict
payment_gateway_decide(const char *card_token, int64_t earlier_outages, int64_t decline_per_mille,
                       uint32_t roll)
{
    for (size_t i = 0; i < LB_COUNTOF(token_rules); i++) {
        const token_rule *r = &token_rules[i];
        if (strcmp(r->token, card_token) != 0)
            continue;
        if (r->outages_first > 0 && earlier_outages < r->outages_first)
            return PAYMENT_OUTAGE;
        if (r->verdict != PAYMENT_APPROVED)
            return r->verdict;
        break;
    }
    return (int64_t)roll < decline_per_mille ? PAYMENT_DECLINED : PAYMENT_APPROVED;
}

payment_verdict
payment_gateway_call(const char *card_token, int64_t earlier_outages)
{
    if (payment_settings.latency_ms > 0) {
        struct timespec ts = { .tv_sec = payment_settings.latency_ms / 1000,
                               .tv_nsec = (payment_settings.latency_ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    return payment_gateway_decide(card_token, earlier_outages, payment_settings.decline_per_mille,
                                  randombytes_uniform(1000));
}
