/* main.c - layby-member: the svc runtime running member_def, after loading the
 * keys and opening the buckets (member_ctx_open), so a missing key fails the
 * start rather than the first request. Otherwise the shape of svc_main(). */
#include <stdio.h>
#include <string.h>

#include "engine/fault.h"
#include "engine/id.h"
#include "engine/log.h"
#include "member.h"

#define OFF(f) offsetof(member_cfg, f)

/* clang-format off */
static const cfg_opt member_opts[] = {
    { "index-key-file",  "LAYBY_INDEX_KEY_FILE",         CFG_STR, NULL,    OFF(index_key_file), 0, 0,   "blind-index key (64 hex)" },
    { "jwt-key-file",    "LAYBY_JWT_PRIVATE_KEY_FILE",   CFG_STR, NULL,    OFF(jwt_key_file),   0, 0,   "ES256 private key (PEM) signing access tokens" },
    { "jwt-issuer",      "LAYBY_JWT_ISSUER",             CFG_STR, "layby", OFF(jwt_issuer),     0, 0,   "iss claim" },
    { "access-ttl",      "LAYBY_MEMBER_ACCESS_TTL",      CFG_MS,  "15m",   OFF(access_ttl_ms),  1000, 3600000, "access token lifetime (<= LAYBY_REVOKED's 1 h)" },
    { "refresh-ttl",     "LAYBY_MEMBER_REFRESH_TTL",     CFG_MS,  "14d",   OFF(refresh_ttl_ms), 1000, 366LL * 86400000, "login (refresh token) lifetime" },
    { "code-ttl",        "LAYBY_MEMBER_CODE_TTL",        CFG_MS,  "10m",   OFF(code_ttl_ms),    100, 600000, "verification code lifetime (<= the bucket's 10 min)" },
    { "code-tries",      "LAYBY_MEMBER_CODE_TRIES",      CFG_INT, "5",     OFF(code_tries),     1, 100, "wrong tries per code before 429" },
    { "resend-gap",      "LAYBY_MEMBER_RESEND_GAP",      CFG_MS,  "1m",    OFF(resend_gap_ms),  0, 3600000, "at most one code per gap" },
    { "resend-per-hour", "LAYBY_MEMBER_RESEND_PER_HOUR", CFG_INT, "5",     OFF(resend_per_hour), 1, 15, "codes per hour and username" },
    { "login-fail-max",  "LAYBY_MEMBER_LOGIN_FAIL_MAX",  CFG_INT, "5",     OFF(login_fail_max), 1, 15,  "failed logins per window (username, address) before 429" },
    { "login-window",    "LAYBY_MEMBER_LOGIN_WINDOW",    CFG_MS,  "15m",   OFF(login_window_ms), 1000, 3600000, "failed-login window (<= the bucket's 1 h)" },
    { "hash-threads",    "LAYBY_MEMBER_HASH_THREADS",    CFG_INT, "1",     OFF(hash_threads),   1, 64,  "Argon2id computations at once" },
    { "hash-queue",      "LAYBY_MEMBER_HASH_QUEUE",      CFG_INT, "1",     OFF(hash_queue),     0, 1024, "logins waiting for a hash slot before 429" },
    { "hash-cgroup",     "LAYBY_MEMBER_HASH_CGROUP",     CFG_STR, "",      OFF(hash_cgroup),    0, 0,   "a cpu cgroup folder (v1: /sys/fs/cgroup/cpu/NAME) the hashing threads join at a low weight; empty = none" },
    { "hash-cgroup-shares", "LAYBY_MEMBER_HASH_CGROUP_SHARES", CFG_INT, MEMBER_HASH_CGROUP_SHARES_STR, OFF(hash_cgroup_shares), 0, 1024, "that cgroup's weight (v1 cpu.shares; v2 cpu.weight = shares / 10.24); 0 = idle (cpu.idle)" },
    { "hash-cgroup-grace", "LAYBY_MEMBER_HASH_CGROUP_GRACE", CFG_MS, "100ms", OFF(hash_cgroup_grace_ms), 0, 60000, "a hash's time in that cgroup before its thread leaves it for the rest of the hash; 0 = no limit" },
    { "hash-priority",   "LAYBY_MEMBER_HASH_PRIORITY",   CFG_STR, "idle",  OFF(hash_priority),  0, 0,   "hashing threads' scheduling: normal, low (nice 19), batch, idle (SCHED_IDLE)" },
    { "argon-memlimit",  "LAYBY_MEMBER_ARGON_MEMLIMIT",  CFG_INT, "19922944", OFF(argon_memlimit), 19922944, 1LL << 32, "Argon2id memory, bytes (>= 19 MiB)" },
    { "argon-opslimit",  "LAYBY_MEMBER_ARGON_OPSLIMIT",  CFG_INT, "2",     OFF(argon_opslimit), 2, 100, "Argon2id passes (>= 2)" },
};
/* clang-format on */

int
main(int argc, char **argv)
{
    static const char about[] =
        "The member service: sign-up, email verification, login and tokens, my page "
        "(requests on layby.qry.member.>; personal data sealed at rest).";
    cfg_opt opts[32];
    size_t n = svc_cfg_opts(opts, LB_COUNTOF(opts), "member", 0);
    /* Logins hold a responder while they hash: keep more responders than the
     * pool admits (hash-threads + hash-queue), so other requests find one. */
    for (size_t i = 0; i < n; i++)
        if (strcmp(opts[i].flag, "query-threads") == 0)
            opts[i].def = "4";
    svc_cfg conf = { 0 };
    bool help = false;
    lb_err err;
    const cfg_group groups[] = { { &conf, opts, n },
                                 { &member_conf, member_opts, LB_COUNTOF(member_opts) } };
    if (cfg_load_groups(groups, 2, argc, argv, &help, &err) != LB_OK) {
        fprintf(stderr, "layby-member: %s\n", err.msg);
        return 2;
    }
    if (help) {
        cfg_help_write_groups(stdout, "layby-member", about, groups, 2);
        return 0;
    }
    log_level lvl;
    if (log_level_parse(&lvl, conf.log_level, &err) != LB_OK) {
        fprintf(stderr, "layby-member: %s\n", err.msg);
        return 2;
    }
    log_init("member", conf.instance, lvl);
    fault_init();
    svc *s = NULL;
    if (id_init(&err) != LB_OK || member_ctx_open(&member_app, &conf, &err) != LB_OK ||
        svc_new(&s, &member_def, &conf, &err) != LB_OK) {
        log_error(NULL, "svc.start_failed", "cannot start", LOG_ERR(&err));
        member_ctx_close(member_app);
        return 1;
    }
    svc_signals_install(s);
    lb_status st = svc_run(s, &err);
    if (st != LB_OK)
        log_error(NULL, "svc.stopped", "stopped with an error", LOG_ERR(&err));
    else
        log_info(NULL, "svc.stopped", "stopped");
    svc_free(s);
    member_ctx_close(member_app);
    nats_Close();
    return st == LB_OK ? 0 : 1;
}
