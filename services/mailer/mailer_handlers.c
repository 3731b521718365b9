/* mailer_handlers.c - the mailer's one handler: open, format, deliver.
 *
 * CRASH POINT: delivered, not committed. The command comes again and the mail
 * goes out again (at least once, mailer.h). A delivery failure rolls the batch
 * back; the runtime retries alone, then naks with a doubling delay, and after
 * --max-deliver moves the command to LAYBY_DLQ (still sealed). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/fault.h"
#include "engine/log.h"
#include "mailer.h"

mailer_cfg mailer_conf;
seal_keys mailer_keys;

#define MAIL_MAX (64 * 1024)

static lb_status
open_content(Layby__V1__MailContent **out, const Layby__V1__SendMail *cmd, lb_err *err)
{
    char ad[64];
    snprintf(ad, sizeof ad, "mail:%s", cmd->mail_id);
    if (cmd->sealed.len < SEAL_OVERHEAD || cmd->sealed.len > MAIL_MAX)
        return lb_err_set(err, LB_ERR_DECODE, "mail %s: sealed content missing or too large",
                          cmd->mail_id);
    uint8_t *plain = malloc(cmd->sealed.len);
    size_t plen = 0;
    if (plain == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "mail content");
    lb_status st = seal_decrypt(plain, cmd->sealed.len, &plen, &mailer_keys, cmd->sealed.data,
                                cmd->sealed.len, ad, err);
    if (st == LB_OK) {
        *out = layby__v1__mail_content__unpack(NULL, plen, plain);
        if (*out == NULL)
            st = lb_err_set(err, LB_ERR_DECODE, "mail %s: content does not decode", cmd->mail_id);
    } else {
        err->code = st = LB_ERR_DECODE;
    }
    sodium_memzero(plain, plen);
    free(plain);
    return st;
}

static lb_status
deliver(const Layby__V1__SendMail *cmd, int64_t now_ms, lb_err *err)
{
    Layby__V1__MailContent *m = NULL;
    lb_status st = open_content(&m, cmd, err);
    if (st != LB_OK)
        return st;
    char *text = NULL;
    st = mailer_format(&text, cmd->mail_id, m, mailer_conf.from, now_ms, err);
    if (st == LB_OK) {
        if (mailer_conf.smtp_url[0] != '\0')
            st = mailer_smtp_send(mailer_conf.smtp_url, mailer_conf.ca_file, mailer_conf.from,
                                  m->to, text, mailer_conf.smtp_timeout_ms, err);
        else
            st = mailer_eml_write(mailer_conf.mailbox, cmd->mail_id, text, err);
    }
    if (text != NULL)
        sodium_memzero(text, strlen(text));
    free(text);
    layby__v1__mail_content__free_unpacked(m, NULL);
    return st;
}

static lb_status
mailer_send(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    (void)b;
    for (size_t i = 0; i < n; i++) {
        const Layby__V1__SendMail *cmd = (const Layby__V1__SendMail *)items[i].msg;
        lb_err why;
        lb_err_clear(&why);
        lb_status st = deliver(cmd, items[i].now_ms, &why);
        log_ctx lc = { .correlation = items[i].env->correlation };
        if (st == LB_OK) {
            fault_point("mailer.after_send"); /* CRASH POINT: sent, not committed */
            log_info(&lc, "mailer.sent", "mail delivered", LOG_STR("mail", cmd->mail_id));
            continue;
        }
        if (st == LB_ERR_DECODE || st == LB_ERR_INVALID) {
            /* Can never be sent: refuse it (acked, logged) instead of retrying. */
            log_warn(&lc, "mailer.unreadable", "mail cannot be sent", LOG_STR("mail", cmd->mail_id),
                     LOG_ERR(&why));
            items[i].outcome = st;
            items[i].why = why;
            continue;
        }
        *err = why;
        return st;
    }
    return LB_OK;
}

/* clang-format off */
static const svc_handler mailer_handlers[] = {
    /* subject          body type                              handler */
    { SUBJ_MAILER_SEND, &layby__v1__send_mail__descriptor, mailer_send, NULL },
};

static const svc_consumer mailer_consumers[] = {
    { "LAYBY_CMD", "mailer" },
};
/* clang-format on */

const svc_def mailer_def = {
    .name = "mailer",
    .consumers = mailer_consumers,
    .n_consumers = LB_COUNTOF(mailer_consumers),
    .handlers = mailer_handlers,
    .n_handlers = LB_COUNTOF(mailer_handlers),
};
