/* ctl_mail.c - `layby-ctl mail list|show`: the dev mailbox the mailer writes
 * when no SMTP server is set (LAYBY_MAILBOX, var/mail in the local stack),
 * so the README's tour can read a verification code. One .eml per mail,
 * named by its mail id (a UUIDv7, so names sort by time). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "id.h"

#define MAIL_FILES_MAX 4096

typedef struct mail_conf {
    ctl_conn conn; /* unused: the mailbox is a folder */
    const char *mailbox;
} mail_conf;

/* clang-format off */
static const cfg_opt mail_opts[] = {
    { "mailbox", "LAYBY_MAILBOX", CFG_STR, "var/mail", offsetof(mail_conf, mailbox), 0, 0, "the mailer's .eml folder" },
};
/* clang-format on */
const ctl_flags ctl_mail_flags = CTL_FLAGS(mail_opts);

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Value of header name in the head of an .eml (up to the blank line). */
static void
header_of(char *out, size_t n, const char *text, const char *name)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = text; *p != '\0' && !(p[0] == '\r' && p[1] == '\n');) {
        const char *end = strstr(p, "\r\n");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nl + 1 && strncmp(p, name, nl) == 0 && p[nl] == ':') {
            snprintf(out, n, "%.*s", (int)(len - nl - 2), p + nl + 2);
            return;
        }
        if (end == NULL)
            break;
        p = end + 2;
    }
}

static lb_status
file_text(char *out, size_t n, const char *dir, const char *name, lb_err *err)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return lb_err_set(err, LB_ERR_NOT_FOUND, "no mail %s in %s", name, dir);
    size_t len = fread(out, 1, n - 1, f);
    fclose(f);
    out[len] = '\0';
    return LB_OK;
}

int
ctl_mail_list(const ctl_cmd *cmd, int argc, char **argv)
{
    mail_conf conf = { 0 };
    lb_err err;
    int rc = ctl_args(&conf, cmd, mail_opts, LB_COUNTOF(mail_opts), argc, argv);
    if (rc >= 0)
        return rc;
    DIR *d = opendir(conf.mailbox);
    if (d == NULL) {
        lb_err_set(&err, LB_ERR_NOT_FOUND, "cannot open the mailbox %s", conf.mailbox);
        return ctl_fail(cmd, &err);
    }
    char *names[MAIL_FILES_MAX];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < MAIL_FILES_MAX) {
        size_t len = strlen(e->d_name);
        if (len > 4 && e->d_name[0] != '.' && strcmp(e->d_name + len - 4, ".eml") == 0)
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], name_cmp);
    for (size_t i = 0; i < n; i++) {
        static char text[64 * 1024];
        char to[256], subject[256], date[64];
        if (names[i] != NULL &&
            file_text(text, sizeof text, conf.mailbox, names[i], &err) == LB_OK) {
            header_of(to, sizeof to, text, "To");
            header_of(subject, sizeof subject, text, "Subject");
            header_of(date, sizeof date, text, "Date");
            int idlen = (int)strlen(names[i]) - 4;
            if (ctl_out.json)
                ctl_json_line(json_pack("{s:s%,s:s,s:s,s:s}", "id", names[i], (size_t)idlen, "date",
                                        date, "to", to, "subject", subject));
            else
                printf("%.*s  %s  %s  %s\n", idlen, names[i], date, to, subject);
        }
        free(names[i]);
    }
    return CTL_EXIT_OK;
}

int
ctl_mail_show(const ctl_cmd *cmd, int argc, char **argv)
{
    mail_conf conf = { 0 };
    const char *id = NULL;
    lb_err err;
    int rc = ctl_positional(&id, cmd, "mail id", &argc, argv);
    if (rc < 0)
        rc = ctl_args(&conf, cmd, mail_opts, LB_COUNTOF(mail_opts), argc, argv);
    if (rc >= 0)
        return rc;
    if (!id_valid(id))
        return ctl_usage_error(cmd, "'%s' is not a mail id", id);
    char name[64];
    static char text[64 * 1024];
    snprintf(name, sizeof name, "%s.eml", id);
    if (file_text(text, sizeof text, conf.mailbox, name, &err) != LB_OK)
        return ctl_fail(cmd, &err);
    if (ctl_out.json)
        ctl_json_doc(json_pack("{s:s,s:s}", "id", id, "eml", text));
    else
        fputs(text, stdout);
    return CTL_EXIT_OK;
}
