/* main.c - layby-mailer: loads the data keys (the mail content is sealed),
 * then runs mailer_def like svc_main(). One message per transaction by
 * default, so a failed delivery resends no other mail of its batch. */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/fault.h"
#include "engine/id.h"
#include "engine/log.h"
#include "mailer.h"

#define OFF(f) offsetof(mailer_cfg, f)

/* clang-format off */
static const cfg_opt mailer_opts[] = {
    { "smtp-url",      "LAYBY_SMTP_URL",             CFG_STR, "",        OFF(smtp_url),        0, 0,   "smtp://host:port, smtps://, smtp+starttls://; empty = write .eml files" },
    { "mailbox",       "LAYBY_MAILBOX",              CFG_STR, "var/mail", OFF(mailbox),        0, 0,   "folder of .eml files when no SMTP URL is set" },
    { "mail-from",     "LAYBY_MAIL_FROM",            CFG_STR, "no-reply@layby.local", OFF(from), 0, 0, "sender address" },
    { "smtp-ca-file",  "LAYBY_SMTP_CA_FILE",         CFG_STR, "",        OFF(ca_file),         0, 0,   "PEM CAs that verify the SMTP server (smtps://, smtp+starttls://); empty = the system's" },
    { "smtp-timeout",  "LAYBY_SMTP_TIMEOUT",         CFG_MS,  "30s",     OFF(smtp_timeout_ms), 100, 600000, "one SMTP conversation" },
};
/* clang-format on */

int
main(int argc, char **argv)
{
    static const char about[] = "The mailer: delivers layby.cmd.mailer.send over SMTP, or as "
                                ".eml files in LAYBY_MAILBOX (at least once).";
    cfg_opt opts[32];
    size_t n = svc_cfg_opts(opts, LB_COUNTOF(opts), "mailer", 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(opts[i].flag, "batch") == 0)
            opts[i].def = "1";
    svc_cfg conf = { 0 };
    bool help = false;
    lb_err err;
    const cfg_group groups[] = { { &conf, opts, n },
                                 { &mailer_conf, mailer_opts, LB_COUNTOF(mailer_opts) } };
    if (cfg_load_groups(groups, 2, argc, argv, &help, &err) != LB_OK) {
        fprintf(stderr, "layby-mailer: %s\n", err.msg);
        return 2;
    }
    if (help) {
        cfg_help_write_groups(stdout, "layby-mailer", about, groups, 2);
        return 0;
    }
    log_level lvl;
    if (log_level_parse(&lvl, conf.log_level, &err) != LB_OK) {
        fprintf(stderr, "layby-mailer: %s\n", err.msg);
        return 2;
    }
    log_init("mailer", conf.instance, lvl);
    fault_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (mailer_conf.smtp_url[0] == '\0')
        mkdir(mailer_conf.mailbox, 0700);
    svc *s = NULL;
    if (id_init(&err) != LB_OK || seal_keys_load(&mailer_keys, "MAILER", &err) != LB_OK ||
        svc_new(&s, &mailer_def, &conf, &err) != LB_OK) {
        log_error(NULL, "svc.start_failed", "cannot start", LOG_ERR(&err));
        return 1;
    }
    log_info(NULL, "mailer.mode", "delivery mode",
             LOG_STR("mode", mailer_conf.smtp_url[0] ? "smtp" : "mailbox"));
    svc_signals_install(s);
    lb_status st = svc_run(s, &err);
    if (st != LB_OK)
        log_error(NULL, "svc.stopped", "stopped with an error", LOG_ERR(&err));
    else
        log_info(NULL, "svc.stopped", "stopped");
    svc_free(s);
    seal_keys_wipe(&mailer_keys);
    curl_global_cleanup();
    nats_Close();
    return st == LB_OK ? 0 : 1;
}
