/* mailer.h - the mailer service: takes layby.cmd.mailer.send from its durable,
 * opens the sealed content and delivers it, over SMTP with libcurl when
 * LAYBY_SMTP_URL is set, else as one .eml file per mail in LAYBY_MAILBOX.
 *
 * Guarantee: at least once. A mail is handed over inside the message's
 * transaction, before its commit and ack; a crash in between redelivers the
 * command and sends it again (twice, never zero times). A .eml is named by the
 * mail id, so a repeat rewrites the same file.
 *
 * Ownership: mailer_conf and mailer_keys are filled by main() before the
 *            service runs; handlers only read them.
 * Threads:   handlers run on the runtime's consumer threads; each delivery
 *            uses its own curl handle.
 */
#ifndef LAYBY_SERVICES_MAILER_MAILER_H
#define LAYBY_SERVICES_MAILER_MAILER_H

#include "engine/seal.h"
#include "engine/subjects.h"
#include "engine/svc.h"
#include "layby/v1/mail.pb-c.h"

typedef struct mailer_cfg {
    const char *smtp_url; /* "" = write .eml files; smtp+starttls:// asks for STARTTLS */
    const char *mailbox;  /* folder of .eml files */
    const char *from;     /* envelope and header sender */
    const char *ca_file;  /* "" = the system's CA store; else the only CAs trusted */
    int64_t smtp_timeout_ms;
} mailer_cfg;

extern mailer_cfg mailer_conf;
extern seal_keys mailer_keys; /* seal_keys_load("MAILER"): the content is sealed */
extern const svc_def mailer_def;

/* The RFC 5322 text of a mail (malloc'd into *out). Refuses header values
 * with line breaks (no header injection). */
lb_status mailer_format(char **out, const char *mail_id, const Layby__V1__MailContent *m,
                        const char *from, int64_t now_ms, lb_err *err);
/* Writes text as <mailbox>/<mail_id>.eml atomically (temp file + rename). */
lb_status mailer_eml_write(const char *mailbox, const char *mail_id, const char *text, lb_err *err);
/* Sends text to `to` over SMTP. A refusal or an unreachable server is
 * LB_ERR_UNAVAILABLE (retried by the runtime with a growing delay). With
 * smtp+starttls:// the text goes out only after STARTTLS succeeded and the
 * server's certificate verified against ca_file ("" = the system's store):
 * a server without STARTTLS or with an untrusted certificate is a failure
 * like a refusal, never a fallback to clear text. */
lb_status mailer_smtp_send(const char *url, const char *ca_file, const char *from, const char *to,
                           const char *text, int64_t timeout_ms, lb_err *err);

#endif
