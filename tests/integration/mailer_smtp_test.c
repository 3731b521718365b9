/* mailer_smtp_test.c - layby-mailer against a real SMTP server on loopback
 * (Debian's python3-aiosmtpd, tests/support/smtp_refuse.py): the mail arrives
 * with its code; a refusing or absent server is retried until it takes the
 * mail; a mailer killed after handing the mail over, before its commit,
 * delivers again after a restart (at least once, never zero times).
 * STARTTLS (smtp+starttls://): the server's self-signed certificate, made
 * here with openssl, verified through LAYBY_SMTP_CA_FILE; a server it cannot
 * verify, or one without STARTTLS, gets nothing (no fallback to clear text)
 * and the mail waits for a server that does. The test server heads each
 * stored mail with "X-Test-TLS: <protocol|none>". */
#include <criterion/criterion.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "engine/seal.h"
#include "engine/subjects.h"
#include "id.h"
#include "layby/v1/mail.pb-c.h"
#include "tsupport.h"

static tsupport_proc mailer;
static pid_t smtp_pid;
static int smtp_port;
static char maildir[512], smtp_env[128];
static char tls_cert[600], tls_key[600], tls_url_env[128], tls_ca_env[700];

static bool
port_open(void *arg)
{
    int port = *(int *)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Starts aiosmtpd on smtp_port, refusing the first `refusals` recipients;
 * with tls, it offers STARTTLS with tls_cert and refuses mail before it. */
static void
smtp_start_with(int refusals, bool tls)
{
    char listen[64], n[16], pypath[600];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", smtp_port);
    snprintf(n, sizeof n, "%d", refusals);
    snprintf(pypath, sizeof pypath, "%s/tests/support", LAYBY_SOURCE_DIR);
    smtp_pid = fork();
    cr_assert(smtp_pid >= 0);
    if (smtp_pid == 0) {
        setenv("PYTHONPATH", pypath, 1);
        if (tls)
            execl("/usr/bin/python3", "python3", "-m", "aiosmtpd", "-n", "-l", listen, "--tlscert",
                  tls_cert, "--tlskey", tls_key, "-c", "smtp_refuse.RefuseFirst", maildir, n,
                  (char *)NULL);
        else
            execl("/usr/bin/python3", "python3", "-m", "aiosmtpd", "-n", "-l", listen, "-c",
                  "smtp_refuse.RefuseFirst", maildir, n, (char *)NULL);
        _exit(127);
    }
    cr_assert(tsupport_poll_until(port_open, &smtp_port, 20000), "aiosmtpd did not start");
}

static void
smtp_start(int refusals)
{
    smtp_start_with(refusals, false);
}

/* A throwaway self-signed P-256 certificate for 127.0.0.1 (the URL's host),
 * its own CA: the mailer trusts it only through LAYBY_SMTP_CA_FILE. */
static void
tls_cert_make(void)
{
    char dir[500], cmd[2400];
    snprintf(dir, sizeof dir, "%s/tls-%d", tsupport_env_req("LAYBY_TEST_TMP"), smtp_port);
    mkdir(dir, 0700);
    snprintf(tls_cert, sizeof tls_cert, "%s/cert.pem", dir);
    snprintf(tls_key, sizeof tls_key, "%s/key.pem", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s "
             ">/dev/null 2>&1",
             tls_key, tls_cert);
    cr_assert_eq(system(cmd), 0, "openssl could not make a certificate");
    snprintf(tls_url_env, sizeof tls_url_env, "LAYBY_SMTP_URL=smtp+starttls://127.0.0.1:%d",
             smtp_port);
    snprintf(tls_ca_env, sizeof tls_ca_env, "LAYBY_SMTP_CA_FILE=%s", tls_cert);
}

static void
smtp_stop(void)
{
    if (smtp_pid > 0) {
        kill(smtp_pid, SIGTERM);
        waitpid(smtp_pid, NULL, 0);
        smtp_pid = 0;
    }
}

static void
setup(void)
{
    tsupport_reset();
    smtp_port = tsupport_port_free();
    snprintf(maildir, sizeof maildir, "%s/maildir-%d", tsupport_env_req("LAYBY_TEST_TMP"),
             smtp_port);
    snprintf(smtp_env, sizeof smtp_env, "LAYBY_SMTP_URL=smtp://127.0.0.1:%d", smtp_port);
}

static void
teardown(void)
{
    tsupport_daemons_finish(&mailer, 1);
    smtp_stop();
}

/* Publishes a sealed verification mail with `code` to the mailer's durable. */
static void
send_mail(const char *code)
{
    seal_keys k;
    lb_err err;
    cr_assert_eq(seal_keys_load(&k, "MAILER", &err), LB_OK, "%s", err.msg);
    char text[128], id[ID_STR_LEN], ad[64];
    snprintf(text, sizeof text, "Your layby verification code is %s.\r\n", code);
    Layby__V1__MailContent mc = LAYBY__V1__MAIL_CONTENT__INIT;
    mc.to = "someone@example.com";
    mc.subject = "Your layby verification code";
    mc.text = text;
    uint8_t plain[512], sealed[512];
    size_t plen = protobuf_c_message_pack(&mc.base, plain), slen = 0;
    id_new(id);
    snprintf(ad, sizeof ad, "mail:%s", id);
    cr_assert_eq(seal_encrypt(sealed, sizeof sealed, &slen, &k, plain, plen, ad, &err), LB_OK);
    Layby__V1__SendMail cmd = LAYBY__V1__SEND_MAIL__INIT;
    cmd.mail_id = id;
    cmd.sealed.data = sealed;
    cmd.sealed.len = slen;
    bus *b = tsupport_admin_bus("mailer-test");
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__send_mail__descriptor, NULL);
    cr_assert_eq(bus_publish(b, SUBJ_MAILER_SEND, &env, &cmd.base, &err), LB_OK, "%s", err.msg);
    bus_close(b);
    seal_keys_wipe(&k);
}

typedef struct want {
    const char *code;
    int n;     /* mails holding the code */
    int clear; /* of them, stored by a session without TLS */
} want;

static bool
mails_with_code(void *arg)
{
    want *w = arg;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/new", maildir);
    DIR *d = opendir(dir);
    int n = 0, clear = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[1200], buf[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        if (strstr(buf, w->code) != NULL) {
            n++;
            clear += strncmp(buf, "X-Test-TLS: none\r\n", 18) == 0;
        }
    }
    if (d != NULL)
        closedir(d);
    w->n = n;
    w->clear = clear;
    return n >= 1;
}

TestSuite(mailer_smtp, .init = setup, .fini = teardown, .timeout = 120);

Test(mailer_smtp, the_mail_arrives_with_its_code)
{
    smtp_start(0);
    const char *env[] = { smtp_env, NULL };
    tsupport_daemon_start(&mailer, "layby-mailer", 0, NULL, env);
    send_mail("493817");
    want w = { "493817", 0, 0 };
    cr_assert(tsupport_poll_until(mails_with_code, &w, 15000), "no mail with the code");
}

Test(mailer_smtp, a_refusing_or_absent_server_is_retried)
{
    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    o.max_deliver = 100; /* the durable's limit caps --max-deliver */
    tsupport_reset_with(&o);
    const char *env[] = { smtp_env, "LAYBY_NAK_DELAY=100ms", "LAYBY_MAX_DELIVER=100", NULL };
    tsupport_daemon_start(&mailer, "layby-mailer", 0, NULL, env);
    send_mail("771203"); /* nobody listens yet: connection refused, retried */
    want w = { "771203", 0, 0 };
    cr_assert_not(tsupport_poll_until(mails_with_code, &w, 1000));
    smtp_start(2); /* then two 550 refusals */
    cr_assert(tsupport_poll_until(mails_with_code, &w, 30000), "never delivered after refusals");
}

static bool
delivered_twice(void *arg)
{
    want *w = arg;
    mails_with_code(w);
    return w->n >= 2;
}

Test(mailer_smtp, a_mailer_killed_after_sending_still_delivers)
{
    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    o.ack_wait_ms = 1000; /* the unacked command comes back after 1 s */
    o.max_deliver = 100;
    tsupport_reset_with(&o);
    smtp_start(0);
    const char *crash[] = { smtp_env, "LAYBY_FAULT=mailer.after_send", NULL };
    tsupport_daemon_start(&mailer, "layby-mailer", 0, NULL, crash);
    send_mail("205566");
    want w = { "205566", 0, 0 };
    cr_assert(tsupport_poll_until(mails_with_code, &w, 15000), "the first send did not arrive");
    /* it died after handing the mail over, before its commit: of SIGKILL,
     * at the crash point (its fault.kill line), not of a crash of its own */
    tsupport_expect_fault_kill(&mailer, 10000);
    const char *env[] = { smtp_env, NULL };
    tsupport_daemon_start(&mailer, "layby-mailer", 0, NULL, env);
    /* the command comes back and is sent again: twice, never zero times */
    cr_assert(tsupport_poll_until(delivered_twice, &w, 20000), "not sent again after the crash");
}

/* The mail arrived over TLS: one copy, headed by a TLS protocol. */
static void
assert_arrived_encrypted(want *w, int64_t within_ms)
{
    cr_assert(tsupport_poll_until(mails_with_code, w, within_ms), "no mail with the code");
    cr_assert_eq(w->clear, 0, "a mail crossed in clear text");
    char dir[600];
    snprintf(dir, sizeof dir, "%s/new", maildir);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    int tls = 0;
    while ((e = readdir(d)) != NULL) {
        char path[1200], head[32] = "";
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = e->d_name[0] == '.' ? NULL : fopen(path, "rb");
        if (f == NULL)
            continue;
        tls += fgets(head, sizeof head, f) != NULL && strncmp(head, "X-Test-TLS: TLSv1.", 18) == 0;
        fclose(f);
    }
    closedir(d);
    cr_assert_eq(tls, w->n, "%d of %d mails carry a TLS session", tls, w->n);
}

Test(mailer_smtp, starttls_sends_after_verifying_the_server_with_the_ca_file)
{
    tls_cert_make();
    smtp_start_with(0, true);
    const char *env[] = { tls_url_env, tls_ca_env, NULL };
    tsupport_daemon_start(&mailer, "layby-mailer", 0, NULL, env);
    send_mail("630118");
    want w = { "630118", 0, 0 };
    assert_arrived_encrypted(&w, 15000);
}

Test(mailer_smtp, starttls_sends_nothing_to_a_server_it_cannot_verify)
{
    tls_cert_make();
    smtp_start_with(0, true);
    /* no CA file: the system's store, which does not know the test's CA */
    const char *env[] = { tls_url_env, "LAYBY_NAK_DELAY=100ms", NULL };
    tsupport_daemon_start(&mailer, "layby-mailer", 0, NULL, env);
    send_mail("418052");
    want w = { "418052", 0, 0 };
    cr_assert_not(tsupport_poll_until(mails_with_code, &w, 3000), "sent to an unverified server");
    cr_assert(tsupport_log_has(&mailer, "svc.nak"), "the failed delivery is not logged");
    cr_assert(tsupport_log_has(&mailer, "certificate"), "the log does not name the certificate");
}

Test(mailer_smtp, a_server_without_starttls_gets_no_mail_in_clear_and_it_waits)
{
    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    o.max_deliver = 100;
    tsupport_reset_with(&o);
    tls_cert_make();
    smtp_start_with(0, false); /* plain SMTP: it would take the mail in clear */
    const char *env[] = { tls_url_env, tls_ca_env, "LAYBY_NAK_DELAY=100ms", "LAYBY_MAX_DELIVER=100",
                          NULL };
    tsupport_daemon_start(&mailer, "layby-mailer", 0, NULL, env);
    send_mail("902744");
    want w = { "902744", 0, 0 };
    cr_assert_not(tsupport_poll_until(mails_with_code, &w, 3000), "sent without STARTTLS");
    cr_assert(tsupport_log_has(&mailer, "Requested SSL level failed"), "the refusal is not logged");
    /* the command was naked, not dropped: a server with STARTTLS gets it */
    smtp_stop();
    smtp_start_with(0, true);
    assert_arrived_encrypted(&w, 30000);
}
