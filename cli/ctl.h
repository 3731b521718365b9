/* ctl.h - what the layby-ctl commands share: the command row, connection
 * settings and the small helpers every command uses.
 *
 * A command is one row in main.c's table and one handler in ctl_<topic>.c.
 * The handler parses its own flags with ctl_args() (its cfg_opt rows plus the
 * connection rows its `needs` ask for), so `layby-ctl <command> --help` is
 * generated from the same tables that parse.
 *
 * Ownership: ctl_nats_close()/PQfinish() release what the open helpers return.
 * Threads:   single-threaded tool.
 */
#ifndef LAYBY_CLI_CTL_H
#define LAYBY_CLI_CTL_H

#include <jansson.h>
#include <libpq-fe.h>
#include <nats/nats.h>

#include "cfg.h"
#include "codec.h"
#include "lb.h"

/* Exit codes. */
#define CTL_EXIT_OK    0
#define CTL_EXIT_FAIL  1 /* the command ran and something is wrong (or unhealthy) */
#define CTL_EXIT_USAGE 2 /* wrong arguments: unknown command or flag, bad value */

/* Which connection settings a command takes (ctl_cmd.needs). */
#define CTL_NEEDS_NATS 0x1u
#define CTL_NEEDS_PG   0x2u

/* Connection settings; every command's config struct starts with one, so the
 * shared cfg_opt rows (offsets into ctl_conn) fit any of them. */
typedef struct ctl_conn {
    const char *nats_url;
    const char *nats_user;
    const char *nats_password;
    const char *db_url;
    int64_t timeout_ms; /* connect and request timeout */
} ctl_conn;

typedef struct ctl_cmd ctl_cmd;
/* Runs the command; argv[0] is the command name, the rest its flags. */
typedef int (*ctl_cmd_fn)(const ctl_cmd *cmd, int argc, char **argv);

/* A command's own flag rows (offsets into its config struct). */
typedef struct ctl_flags {
    const cfg_opt *rows;
    size_t n;
} ctl_flags;
#define CTL_FLAGS(rows)        \
    {                          \
        rows, LB_COUNTOF(rows) \
    }

struct ctl_cmd {
    const char *name; /* words typed after layby-ctl: "bus setup" */
    unsigned needs;   /* CTL_NEEDS_* */
    ctl_cmd_fn fn;
    const char *help;       /* one line for `layby-ctl --help` */
    const char *usage;      /* positional arguments after the name: "<id>"; NULL = none */
    const ctl_flags *flags; /* its own flags (ctl_parse()); NULL = none */
};

/* Output settings every command shares, set by main() before the handler
 * runs: --json (or LAYBY_CTL_JSON=1) anywhere on the line asks for one JSON
 * document, or one JSON object a line for lists and streams; colour only
 * when stdout is a terminal and NO_COLOR is unset (--no-color turns it off). */
typedef struct ctl_output {
    bool json;
    bool color;
} ctl_output;
extern ctl_output ctl_out;

/* ANSI colour for a word (a status), "" when colour is off. */
const char *ctl_color(const char *word);
const char *ctl_color_end(void);
/* Prints o as one compact JSON line and drops the reference. */
void ctl_json_line(json_t *o);
/* Prints o indented (one document) and drops the reference. */
void ctl_json_doc(json_t *o);
/* "layby-ctl <cmd>: <text>" on stderr, then the command's usage line;
 * returns CTL_EXIT_USAGE. */
int ctl_usage_error(const ctl_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Progress for long work, on stderr only (never mixed into the output). */
void ctl_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses argv into conf (which starts with a ctl_conn) from the connection
 * rows cmd->needs asks for plus the command's own rows. Returns -1 to go on,
 * else the exit code to return at once (after --help or a bad flag). */
int ctl_args(void *conf, const ctl_cmd *cmd, const cfg_opt *opts, size_t n, int argc, char **argv);
/* Same with the rows of the command's table row (cmd->flags). */
int ctl_parse(void *conf, const ctl_cmd *cmd, int argc, char **argv);

/* Connects to NATS once (no retry loop: a tool should fail fast) and makes
 * a JetStream context; js may be NULL. */
lb_status ctl_nats_open(natsConnection **nc, jsCtx **js, const ctl_conn *c, lb_err *err);
void ctl_nats_close(natsConnection *nc, jsCtx *js); /* NULLs are fine */
/* Copies the nats.c error text (nats_GetLastError) after `what`. */
lb_status ctl_nats_err(lb_err *err, natsStatus s, const char *what);

/* Connects to PostgreSQL with a connect timeout. */
lb_status ctl_pg_open(PGconn **out, const ctl_conn *c, lb_err *err);

/* Prints "layby-ctl <cmd>: <err>" on stderr and returns CTL_EXIT_FAIL. */
int ctl_fail(const ctl_cmd *cmd, const lb_err *err);

/* Takes the one positional argument (`saga show <id>`), which must follow
 * the command word, out of argv so ctl_args() sees only flags. Returns -1 to
 * go on (*out is NULL when --help was asked: ctl_args() answers it), else the
 * exit code. Messages name it <what>. (ctl_msg.c) */
int ctl_positional(const char **out, const ctl_cmd *cmd, const char *what, int *argc, char **argv);
/* The positional id of `saga show <id>` and the like, then the command's
 * flags (ctl_parse()); an id that is not a UUID is a usage error naming
 * <what>. -1 to go on with *id set, else the exit code. */
int ctl_id_args(const char **id, void *conf, const ctl_cmd *cmd, const char *what, int argc,
                char **argv);
/* Parses a positive decimal integer argument; -1 to go on, else the exit code. */
int ctl_u64_arg(uint64_t *out, const ctl_cmd *cmd, const char *what, const char *text);
/* A stored message printed as bus_json_tree() renders it (engine/bus_json.h),
 * with json_dumps() flags: JSON_COMPACT (one line) or JSON_INDENT(2). */
void ctl_msg_print(natsMsg *m, uint64_t seq, int64_t time_ns, size_t flags);

/* The handlers (one file per topic) and their flag rows. */
int ctl_status(const ctl_cmd *cmd, int argc, char **argv);
int ctl_bus_setup(const ctl_cmd *cmd, int argc, char **argv);
int ctl_bus_info(const ctl_cmd *cmd, int argc, char **argv);
int ctl_db_status(const ctl_cmd *cmd, int argc, char **argv);
int ctl_db_migrate(const ctl_cmd *cmd, int argc, char **argv);
int ctl_health(const ctl_cmd *cmd, int argc, char **argv);
int ctl_token_mint(const ctl_cmd *cmd, int argc, char **argv);
int ctl_member_admin(const ctl_cmd *cmd, int argc, char **argv);
int ctl_member_rekey(const ctl_cmd *cmd, int argc, char **argv);
int ctl_mail_list(const ctl_cmd *cmd, int argc, char **argv);
int ctl_mail_show(const ctl_cmd *cmd, int argc, char **argv);
int ctl_dlq_list(const ctl_cmd *cmd, int argc, char **argv);
int ctl_dlq_show(const ctl_cmd *cmd, int argc, char **argv);
int ctl_dlq_redrive(const ctl_cmd *cmd, int argc, char **argv);
int ctl_dlq_purge(const ctl_cmd *cmd, int argc, char **argv);
int ctl_saga_list(const ctl_cmd *cmd, int argc, char **argv);
int ctl_saga_show(const ctl_cmd *cmd, int argc, char **argv);
int ctl_saga_op(const ctl_cmd *cmd, int argc, char **argv); /* retry, resolve, cancel, signal */
int ctl_saga_replay(const ctl_cmd *cmd, int argc, char **argv);
int ctl_events_replay(const ctl_cmd *cmd, int argc, char **argv);
int ctl_events_tail(const ctl_cmd *cmd, int argc, char **argv);
int ctl_replay(const ctl_cmd *cmd, int argc, char **argv);
int ctl_order_list(const ctl_cmd *cmd, int argc, char **argv);
int ctl_order_show(const ctl_cmd *cmd, int argc, char **argv);
int ctl_audit(const ctl_cmd *cmd, int argc, char **argv); /* ctl_audit.c */

extern const ctl_flags ctl_status_flags, ctl_db_flags, ctl_bus_setup_flags, ctl_token_flags,
    ctl_dlq_list_flags, ctl_dlq_filter_flags, ctl_saga_list_flags, ctl_saga_op_flags,
    ctl_saga_signal_flags, ctl_events_replay_flags, ctl_events_tail_flags, ctl_replay_flags,
    ctl_order_list_flags, ctl_member_rekey_flags, ctl_mail_flags, ctl_product_list_flags,
    ctl_product_add_flags, ctl_product_stock_flags;

/* Shared by topics (ctl_saga.c): a saga's state, steps and log on stdout (or
 * one JSON document with --json); a bus that fails fast when NATS is
 * unreachable. */
struct bus;
lb_status ctl_saga_print(PGconn *pg, const char *id, lb_err *err);
/* (the same as one JSON document: saga_view_show(), engine/orchestrator/saga_view.h) */
lb_status ctl_bus_open(struct bus **b, const ctl_conn *c, lb_err *err);
int ctl_product(const ctl_cmd *cmd, int argc, char **argv); /* list, show, add, stock */

#endif
