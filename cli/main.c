/* main.c - layby-ctl: the operator's tool. `layby-ctl <command> [--flag value]...`
 *
 * Commands are rows of ctl_cmds, walked by one loop: the longest row whose
 * words match the start of argv wins, and `layby-ctl --help` lists the rows.
 * Connection settings come from the same environment the stack writes
 * (scripts/dev env): LAYBY_NATS_URL, LAYBY_CTL_NATS_USER/_PASSWORD (the admin
 * user), LAYBY_CTL_DATABASE_URL. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "id.h"

/* One row per command, handlers declared in ctl.h (ctl_<topic>.c); the
 * flags CTL_NEEDS_NATS / CTL_NEEDS_PG give them connection settings.
 * clang-format off */
static const ctl_cmd ctl_cmds[] = {
    /* name          needs                            handler          help */
    { "bus setup", CTL_NEEDS_NATS, ctl_bus_setup,
      "create or update streams, durable consumers and key-value buckets" },
    { "health", CTL_NEEDS_NATS | CTL_NEEDS_PG, ctl_health,
      "check NATS, the streams (message counts), consumers and PostgreSQL" },
    { "token mint", 0, ctl_token_mint,
      "print an ES256 access token (--sub ID --role ADMIN|USER --ttl 1h)" },
    { "dlq list", CTL_NEEDS_NATS, ctl_dlq_list,
      "list dead letters in LAYBY_DLQ with their Layby-Dlq-* headers" },
    { "dlq show", CTL_NEEDS_NATS, ctl_dlq_show,
      "<seq>: one dead letter as JSON, headers and decoded body" },
    { "dlq retry", CTL_NEEDS_NATS, ctl_dlq_retry,
      "<seq>: republish a dead letter to its original subject, then delete it" },
    { "saga list", CTL_NEEDS_PG, ctl_saga_list,
      "sagas, most recently changed first (--status STUCK --limit 50)" },
    { "saga show", CTL_NEEDS_PG, ctl_saga_show,
      "<id>: a saga's state, steps, timer and transition log" },
    { "saga retry", CTL_NEEDS_NATS, ctl_saga_op,
      "<id> --reason TEXT: restart a STUCK saga's compensation" },
    { "saga resolve", CTL_NEEDS_NATS, ctl_saga_op,
      "<id> --reason TEXT: mark a STUCK saga repaired by hand (RESOLVED)" },
    { "saga signal", CTL_NEEDS_NATS, ctl_saga_op,
      "<id> --signal NAME --reason TEXT: send a running saga a signal (cancel, return)" },
    { "saga replay", CTL_NEEDS_PG, ctl_saga_replay,
      "<id>: re-decide the saga's log and compare with its stored state" },
    { "order list", CTL_NEEDS_NATS, ctl_order_list,
      "orders, newest first (--member ID --status PAID --limit 20)" },
    { "order show", CTL_NEEDS_NATS | CTL_NEEDS_PG, ctl_order_show,
      "<id>: an order (lines, totals, address, timeline), its delivery and its saga" },
    { "audit", CTL_NEEDS_NATS, ctl_audit,
      "stock and money conservation across services (--json --settle 30s)" },
    { "member show", CTL_NEEDS_NATS, ctl_member_admin,
      "<username|id>: a member, decrypted (status, role, data key)" },
    { "member grant-admin", CTL_NEEDS_NATS, ctl_member_admin,
      "<username|id>: give a verified member the ADMIN role (the shop's first admin)" },
    { "member lock", CTL_NEEDS_NATS, ctl_member_admin,
      "<username|id>: refuse the member's logins and end the current ones" },
    { "member unlock", CTL_NEEDS_NATS, ctl_member_admin,
      "<username|id>: allow the member's logins again" },
    { "member rekey", CTL_NEEDS_NATS, ctl_member_rekey,
      "re-seal personal data under the current data key, in batches (--batch 500)" },
    { "mail list", 0, ctl_mail_list,
      "the dev mailbox (LAYBY_MAILBOX): id, date, recipient, subject" },
    { "mail show", 0, ctl_mail_show, "<id>: one mail of the dev mailbox, as written" },
    { "product list", CTL_NEEDS_NATS, ctl_product,
      "products a page at a time, one JSON line each (--limit --cursor --category --q)" },
    { "product show", CTL_NEEDS_NATS, ctl_product,
      "<id>: one product as JSON, with stockAvailable" },
    { "product add", CTL_NEEDS_NATS, ctl_product,
      "register a product (--name --price --category [--details --stock])" },
    { "product stock", CTL_NEEDS_NATS, ctl_product,
      "<id> --delta N: restock (or correct with a negative N); never below zero" },
    { "replay", CTL_NEEDS_NATS, ctl_replay,
      "<stream>: print stored messages as JSON lines (--subject --since --seq --limit)" },
};
/* clang-format on */

/* Number of argv words (from argv[1]) that spell name, or 0. */
static int
words_match(const char *name, int argc, char **argv)
{
    int i = 1;
    const char *p = name;
    while (*p != '\0') {
        size_t len = strcspn(p, " ");
        if (i >= argc || strlen(argv[i]) != len || strncmp(argv[i], p, len) != 0)
            return 0;
        i++;
        p += len;
        p += strspn(p, " ");
    }
    return i - 1;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: layby-ctl <command> [--flag value]...   (layby-ctl <command> --help)\n\n"
               "commands:\n");
    for (size_t i = 0; i < LB_COUNTOF(ctl_cmds); i++)
        fprintf(f, "  %-14s %s\n", ctl_cmds[i].name, ctl_cmds[i].help);
    fprintf(f, "\nConnections use LAYBY_NATS_URL, LAYBY_CTL_NATS_USER, LAYBY_CTL_NATS_PASSWORD\n"
               "and LAYBY_CTL_DATABASE_URL: eval \"$(scripts/dev env)\" sets them.\n");
}

int
main(int argc, char **argv)
{
    const ctl_cmd *best = NULL;
    int best_words = 0;
    lb_err err;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
    }
    for (size_t i = 0; i < LB_COUNTOF(ctl_cmds); i++) {
        int w = words_match(ctl_cmds[i].name, argc, argv);
        if (w > best_words) {
            best = &ctl_cmds[i];
            best_words = w;
        }
    }
    if (best == NULL) {
        fprintf(stderr, "layby-ctl: unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (id_init(&err) != LB_OK) {
        fprintf(stderr, "layby-ctl: %s\n", err.msg);
        return CTL_EXIT_FAIL;
    }
    /* The handler sees argv[0] = its last word, then its flags. */
    int rc = best->fn(best, argc - best_words, argv + best_words);
    nats_Close();
    return rc;
}
