"""An aiosmtpd handler for the mailer's SMTP tests: refuses the first N
recipients with 550, then accepts and stores each mail as a Maildir file,
headed by "X-Test-TLS: <protocol>" ("none" when the session had no STARTTLS),
so a test can tell a mail that crossed in clear.

    /usr/bin/python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c smtp_refuse.RefuseFirst DIR N
    (add --tlscert CERT --tlskey KEY to offer STARTTLS, and require it)
(with tests/support on PYTHONPATH)."""
import mailbox
import os


class RefuseFirst:
    def __init__(self, maildir, refusals="0"):
        for sub in ("tmp", "new", "cur"):  # Maildir(create=True) skips an existing folder
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)
        self.box = mailbox.Maildir(maildir, create=False)
        self.left = int(refusals)

    @classmethod
    def from_cli(cls, parser, *args):
        # aiosmtpd hands CLASSARGS here
        if len(args) not in (1, 2):
            parser.error("RefuseFirst takes MAILDIR [REFUSALS]")
        return cls(*args)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.left > 0:
            self.left -= 1
            return "550 mailbox unavailable (test refusal)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        ssl_object = session.ssl.get("ssl_object") if session.ssl else None
        tls = ssl_object.version() if ssl_object is not None else "none"
        self.box.add(b"X-Test-TLS: " + tls.encode() + b"\r\n" + envelope.original_content)
        return "250 Message accepted for delivery"
