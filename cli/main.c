/* main.c - layby-ctl: the operator's tool. `layby-ctl <command> [--flag value]...`
 *
 * Commands are rows of ctl_cmds, walked by one loop: the longest row whose
 * words match the start of argv wins, and `layby-ctl --help` lists the rows.
 * Connection settings come from the same environment the stack writes
 * (scripts/dev env): LAYBY_NATS_URL, LAYBY_CTL_NATS_USER/_PASSWORD (the admin
 * user), LAYBY_CTL_DATABASE_URL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "id.h"

/* One row per command, handlers declared in ctl.h (ctl_<topic>.c): its
 * words, the connections it needs (CTL_NEEDS_*), the handler, one line of
 * help, its positional arguments and its own flag rows. `layby-ctl --help`,
 * `<command> --help` and every usage error are written from these rows.
 * clang-format off */
static const ctl_cmd ctl_cmds[] = {
    /* name          needs                            handler          help, usage, flags */
    { "status", CTL_NEEDS_NATS | CTL_NEEDS_PG, ctl_status,
      "the whole shop: servers, streams, durables, outbox backlogs, sagas, dead letters; exit 1 if "
      "unhealthy",
      NULL, &ctl_status_flags },
    { "health", CTL_NEEDS_NATS | CTL_NEEDS_PG, ctl_health,
      "check NATS, the streams (message counts), consumers and PostgreSQL", NULL, NULL },
    { "bus setup", CTL_NEEDS_NATS, ctl_bus_setup,
      "create or update streams, durable consumers and key-value buckets", NULL,
      &ctl_bus_setup_flags },
    { "db status", 0, ctl_db_status,
      "the migrations of sql/: applied or pending (exit 1 when one is pending)", NULL,
      &ctl_db_flags },
    { "db migrate", 0, ctl_db_migrate,
      "apply the pending migrations, each in one transaction as its schema's role, then "
      "sql/shared to every service schema",
      NULL, &ctl_db_flags },
    { "bus info", CTL_NEEDS_NATS, ctl_bus_info,
      "each stream's and durable's configuration and state", NULL, NULL },
    { "token mint", 0, ctl_token_mint,
      "print an ES256 access token (--sub ID --role ADMIN|USER --ttl 1h)", NULL, &ctl_token_flags },
    { "dlq list", CTL_NEEDS_NATS, ctl_dlq_list,
      "list dead letters in LAYBY_DLQ with their Layby-Dlq-* headers", NULL, &ctl_dlq_list_flags },
    { "dlq show", CTL_NEEDS_NATS, ctl_dlq_show, "one dead letter as JSON, headers and decoded body",
      "<seq>", NULL },
    { "dlq redrive", CTL_NEEDS_NATS, ctl_dlq_redrive,
      "republish dead letters to their original subjects, then delete them (by seq or filter)",
      "[<seq>]", &ctl_dlq_filter_flags },
    { "dlq retry", CTL_NEEDS_NATS, ctl_dlq_redrive, "the old name of dlq redrive", "[<seq>]",
      &ctl_dlq_filter_flags },
    { "dlq purge", CTL_NEEDS_NATS, ctl_dlq_purge,
      "delete dead letters without re-sending them (by seq or filter)", "[<seq>]",
      &ctl_dlq_filter_flags },
    { "saga list", CTL_NEEDS_PG, ctl_saga_list,
      "sagas, newest first (--type --state --since --correlation, --after for the "
      "next page)",
      NULL, &ctl_saga_list_flags },
    { "saga show", CTL_NEEDS_PG, ctl_saga_show,
      "a saga's record, steps, timer and timeline (inputs, decisions, commands, times)", "<id>",
      NULL },
    { "saga retry", CTL_NEEDS_NATS, ctl_saga_op,
      "restart a STUCK saga's compensation (who and why go into its log)", "<id>",
      &ctl_saga_op_flags },
    { "saga resolve", CTL_NEEDS_NATS, ctl_saga_op, "mark a STUCK saga repaired by hand (RESOLVED)",
      "<id>", &ctl_saga_op_flags },
    { "saga cancel", CTL_NEEDS_NATS, ctl_saga_op,
      "send a running saga the cancel signal: it undoes what is done", "<id>", &ctl_saga_op_flags },
    { "saga signal", CTL_NEEDS_NATS, ctl_saga_op,
      "send a running saga a signal (--signal cancel|return)", "<id>", &ctl_saga_signal_flags },
    { "saga replay", CTL_NEEDS_PG, ctl_saga_replay,
      "re-decide the saga's log and compare with its stored state", "<id>", NULL },
    { "events replay", CTL_NEEDS_NATS | CTL_NEEDS_PG, ctl_events_replay,
      "stored messages decoded (--stream --since|--from-seq --until --correlation --type; --check)",
      NULL, &ctl_events_replay_flags },
    { "events tail", CTL_NEEDS_NATS, ctl_events_tail,
      "new messages as they arrive, decoded (--subject --type --correlation)", NULL,
      &ctl_events_tail_flags },
    { "replay", CTL_NEEDS_NATS, ctl_replay,
      "the old form of events replay: a stream's messages as JSON lines", "<stream>",
      &ctl_replay_flags },
    { "order list", CTL_NEEDS_NATS, ctl_order_list,
      "orders, newest first (--member ID --status PAID --limit 20)", NULL, &ctl_order_list_flags },
    { "order show", CTL_NEEDS_NATS | CTL_NEEDS_PG, ctl_order_show,
      "an order (lines, totals, address, timeline), its delivery and its saga", "<id>", NULL },
    { "audit", CTL_NEEDS_NATS, ctl_audit,
      "stock and money conservation across services (--settle 30s); exit 1 on a violation", NULL,
      NULL },
    { "member show", CTL_NEEDS_NATS, ctl_member_admin,
      "a member, decrypted (status, role, data key)", "<username|id>", NULL },
    { "member grant-admin", CTL_NEEDS_NATS, ctl_member_admin,
      "give a verified member the ADMIN role (the shop's first admin)", "<username|id>", NULL },
    { "member lock", CTL_NEEDS_NATS, ctl_member_admin,
      "refuse the member's logins and end the current ones", "<username|id>", NULL },
    { "member unlock", CTL_NEEDS_NATS, ctl_member_admin, "allow the member's logins again",
      "<username|id>", NULL },
    { "member rekey", CTL_NEEDS_NATS, ctl_member_rekey,
      "re-seal personal data under the current data key, in batches (--batch 500)", NULL,
      &ctl_member_rekey_flags },
    { "mail list", 0, ctl_mail_list,
      "the dev mailbox (LAYBY_MAILBOX): id, date, recipient, subject", NULL, &ctl_mail_flags },
    { "mail show", 0, ctl_mail_show, "one mail of the dev mailbox, as written", "<id>",
      &ctl_mail_flags },
    { "product list", CTL_NEEDS_NATS, ctl_product,
      "products a page at a time, one JSON line each (--limit --cursor --category --q)", NULL,
      &ctl_product_list_flags },
    { "product show", CTL_NEEDS_NATS, ctl_product, "one product as JSON, with stockAvailable",
      "<id>", NULL },
    { "product add", CTL_NEEDS_NATS, ctl_product,
      "register a product (--name --price --category [--details --stock])", NULL,
      &ctl_product_add_flags },
    { "product stock", CTL_NEEDS_NATS, ctl_product,
      "restock (or correct with a negative --delta N); never below zero", "<id>",
      &ctl_product_stock_flags },
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
    fprintf(f, "usage: layby-ctl <command> [--json] [--flag value]...   (layby-ctl <command> "
               "--help)\n\ncommands:\n");
    for (size_t i = 0; i < LB_COUNTOF(ctl_cmds); i++) {
        char head[64];
        snprintf(head, sizeof head, "%s%s%s", ctl_cmds[i].name, ctl_cmds[i].usage ? " " : "",
                 ctl_cmds[i].usage ? ctl_cmds[i].usage : "");
        fprintf(f, "  %-32s %s\n", head, ctl_cmds[i].help);
    }
    fprintf(f, "\n--json anywhere gives JSON (one document, or one object a line for lists and\n"
               "streams). Exit: 0 ok, 1 failure or unhealthy, 2 wrong arguments.\n"
               "Connections use LAYBY_NATS_URL, LAYBY_CTL_NATS_USER, LAYBY_CTL_NATS_PASSWORD\n"
               "and LAYBY_CTL_DATABASE_URL: eval \"$(scripts/dev env)\" sets them.\n");
}

/* Takes the flags every command shares (--json, --no-color) out of argv,
 * wherever they stand, and decides on colour. */
static int
output_flags(int argc, char **argv)
{
    const char *env = getenv("LAYBY_CTL_JSON");
    bool no_color = getenv("NO_COLOR") != NULL;
    int k = 1;
    ctl_out.json = env != NULL && (strcmp(env, "1") == 0 || strcmp(env, "true") == 0);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            ctl_out.json = true;
        else if (strcmp(argv[i], "--no-color") == 0)
            no_color = true;
        else
            argv[k++] = argv[i];
    }
    argv[k] = NULL;
    const char *term = getenv("TERM");
    ctl_out.color = !ctl_out.json && !no_color && isatty(STDOUT_FILENO) &&
                    !(term != NULL && strcmp(term, "dumb") == 0);
    return k;
}

int
main(int argc, char **argv)
{
    const ctl_cmd *best = NULL;
    int best_words = 0;
    lb_err err;

    argc = output_flags(argc, argv);
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
