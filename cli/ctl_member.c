/* ctl_member.c - `layby-ctl member show|grant-admin|lock|unlock <username|id>`
 * and `layby-ctl member rekey`: requests to the member service as the admin
 * NATS user (layby.qry.member.admin and .rekey, which the edge cannot send).
 *
 * `show` prints the member decrypted, for an operator; nothing else here
 * prints personal data. `rekey` re-seals batches under the current data key
 * until none is left, while the shop runs (docs/DECISIONS.md §9): a progress
 * line per batch on stderr, the total on stdout (one JSON document with --json). */
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "codec.h"
#include "ctl.h"
#include "engine/subjects.h"
#include "layby/v1/member.pb-c.h"

typedef struct member_conf {
    ctl_conn conn;
    int64_t batch;
} member_conf;

/* clang-format off */
static const cfg_opt member_opts[] = {
    { "batch", NULL, CFG_INT, "500", offsetof(member_conf, batch), 1, 10000, "rows re-sealed per transaction (rekey)" },
};

/* command word -> MemberAdmin.action */
static const struct {
    const char *cmd, *action;
} member_actions[] = {
    { "member show",        "show" },
    { "member grant-admin", "grant_admin" },
    { "member lock",        "lock" },
    { "member unlock",      "unlock" },
};
/* clang-format on */
const ctl_flags ctl_member_rekey_flags = CTL_FLAGS(member_opts);

/* Sends req on subject and decodes the reply as want. */
static lb_status
ask(ProtobufCMessage **out, const ctl_conn *c, const char *subject, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *want, lb_err *err)
{
    natsConnection *nc = NULL;
    natsMsg *m = NULL, *reply = NULL;
    lb_status st = ctl_nats_open(&nc, NULL, c, err);
    if (st != LB_OK)
        return st;
    bus_envelope env;
    bus_envelope_init(&env, req->descriptor, NULL);
    snprintf(env.actor, sizeof env.actor, "operator ADMIN");
    if ((st = bus_msg_new(&m, subject, &env, req, err)) == LB_OK) {
        natsStatus ns = natsConnection_RequestMsg(&reply, nc, m, c->timeout_ms);
        if (ns != NATS_OK)
            st = ctl_nats_err(err, ns, subject);
        else
            st = bus_reply_decode(out, reply, want, err);
    }
    natsMsg_Destroy(m);
    natsMsg_Destroy(reply);
    ctl_nats_close(nc, NULL);
    return st;
}

int
ctl_member_admin(const ctl_cmd *cmd, int argc, char **argv)
{
    member_conf conf = { 0 };
    const char *ref = NULL;
    lb_err err;
    const char *action = NULL;
    for (size_t i = 0; i < LB_COUNTOF(member_actions); i++)
        if (strcmp(member_actions[i].cmd, cmd->name) == 0)
            action = member_actions[i].action;
    int rc = ctl_positional(&ref, cmd, "username or member id", &argc, argv);
    if (rc < 0)
        rc = ctl_args(&conf, cmd, NULL, 0, argc, argv);
    if (rc >= 0)
        return rc;
    if (action == NULL) {
        lb_err_set(&err, LB_ERR_INTERNAL, "no member command named %s", cmd->name);
        return ctl_fail(cmd, &err);
    }
    Layby__V1__MemberAdmin req = LAYBY__V1__MEMBER_ADMIN__INIT;
    req.ref = (char *)ref;
    req.action = (char *)action;
    ProtobufCMessage *out = NULL;
    if (ask(&out, &conf.conn, SUBJ_MEMBER_ADMIN, &req.base, &layby__v1__member_record__descriptor,
            &err) != LB_OK)
        return ctl_fail(cmd, &err);
    char *text = NULL;
    if (codec_json_encode_text(&text, out, &err) != LB_OK) {
        protobuf_c_message_free_unpacked(out, NULL);
        return ctl_fail(cmd, &err);
    }
    printf("%s\n", text);
    free(text);
    protobuf_c_message_free_unpacked(out, NULL);
    return CTL_EXIT_OK;
}

int
ctl_member_rekey(const ctl_cmd *cmd, int argc, char **argv)
{
    member_conf conf = { 0 };
    lb_err err;
    int rc = ctl_args(&conf, cmd, member_opts, LB_COUNTOF(member_opts), argc, argv);
    if (rc >= 0)
        return rc;
    int64_t total = 0;
    for (;;) {
        Layby__V1__Rekey req = LAYBY__V1__REKEY__INIT;
        req.batch = conf.batch;
        ProtobufCMessage *out = NULL;
        if (ask(&out, &conf.conn, SUBJ_MEMBER_REKEY, &req.base,
                &layby__v1__rekey_progress__descriptor, &err) != LB_OK)
            return ctl_fail(cmd, &err);
        const Layby__V1__RekeyProgress *p = (const Layby__V1__RekeyProgress *)out;
        total += p->resealed;
        int64_t left = p->remaining, done = p->resealed;
        protobuf_c_message_free_unpacked(out, NULL);
        /* progress per batch on stderr; stdout gets only the result (issue 21) */
        ctl_progress("re-sealed %lld, %lld left\n", (long long)total, (long long)left);
        if (left == 0) {
            if (ctl_out.json)
                ctl_json_line(json_pack("{s:I,s:I}", "resealed", (json_int_t)total, "left",
                                        (json_int_t)left));
            else
                printf("re-sealed %lld, 0 left\n", (long long)total);
            return CTL_EXIT_OK;
        }
        if (done == 0) { /* the rest is locked by another rekey: let it finish */
            lb_err_set(&err, LB_ERR_CONFLICT, "%lld rows are being re-sealed elsewhere",
                       (long long)left);
            return ctl_fail(cmd, &err);
        }
    }
}
