"""A private Postfix (Debian's package) on 127.0.0.1, with SASL AUTH through a private Dovecot.

Both run from a folder of their own (config, queue, logs, mail): nothing of the system's mail
setup is read or changed, and the system's services need not run. The instance
- listens on 127.0.0.1 only, on a free port;
- requires STARTTLS before anything else (`smtpd_tls_security_level = encrypt`) and AUTH
  before any recipient; offers the mechanisms in `MECHANISMS`, checked by Dovecot against one
  user and password;
- shows a self-signed certificate for 127.0.0.1 (`cert`, made here: its own CA);
- delivers every recipient of every domain into one Maildir (`mail/catchall/`) and relays
  nothing off the machine (`default_transport = error`);
- logs to `postfix.log` (`maillog_file` through postlogd) and Dovecot to `dovecot.log`.

Postfix's master must be started by root. `postfix_problem()` says why it cannot run here (not
installed, not root); the fixture fails on that in CI and skips outside it.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from tests.imap_server import self_signed_loopback_cert
from tests.smtp_server import free_port

POSTFIX = "/usr/sbin/postfix"
DOVECOT = "/usr/sbin/dovecot"
#: the mechanisms the instance offers (Dovecot's auth_mechanisms)
MECHANISMS = ("PLAIN", "LOGIN")
USER = "mailer"

_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.outreach.test
mydomain = outreach.test
myorigin = $myhostname
mydestination =
relay_domains =
relayhost =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
biff = no
smtputf8_enable = yes
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_tls_cert_file = {root}/tls/cert.pem
smtpd_tls_key_file = {root}/tls/key.pem
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {root}/dovecot/run/auth-postfix
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
virtual_mailbox_domains = static:all
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = static:catchall/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
default_transport = error:this test server relays nothing
maillog_file = {root}/postfix.log
maillog_file_prefixes = {root}
"""

# service type private unpriv chroot wakeup maxproc command: no chroot, nothing but what the
# instance uses (no pickup: nothing is submitted locally)
_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

_DOVECOT_CONF = """\
base_dir = {root}/dovecot/run
state_dir = {root}/dovecot/state
log_path = {root}/dovecot.log
protocols =
ssl = no
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
auth_verbose = yes
disable_plaintext_auth = no
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/dovecot/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home=/nonexistent
}}
# no slowing down of refused logins (the tests refuse some on purpose, from 127.0.0.1)
login_trusted_networks = 127.0.0.1/32
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0666
  }}
}}
"""

#: Postfix's log line for one refused AUTH: `... SASL PLAIN authentication failed: ...`
FAILED_AUTH = re.compile(r"SASL (\S+) authentication failed")


def postfix_problem() -> str | None:
    """Why a private Postfix cannot run here, or None."""
    missing = [p for p in (POSTFIX, DOVECOT) if not os.access(p, os.X_OK)]
    if missing:
        return (
            f"{' and '.join(missing)} not installed (Debian packages postfix and dovecot-core; "
            ".ci/run installs them)"
        )
    if os.geteuid() != 0:
        return "Postfix's master daemon must be started by root"
    return None


class PostfixServer:
    """The private instance; `start()` and `stop()`, or use it as a context manager."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.port = free_port()
        # not pytest's tmp_path: that is 0700 under root, and Postfix's and Dovecot's own
        # users must reach the config, the socket and the Maildir
        self.root = Path(tempfile.mkdtemp(prefix="outreach-postfix-"))
        self.root.chmod(0o755)
        self.dovecot: subprocess.Popen[bytes] | None = None
        self.started = False

    @property
    def cert(self) -> Path:
        """The server's certificate (its own CA): what an engine's `cafile` names to trust it."""
        return self.root / "tls" / "cert.pem"

    @property
    def log(self) -> Path:
        return self.root / "postfix.log"

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / "catchall"

    def url(self, password: str | None = None, **options: str) -> str:
        """An engine URL for this instance (the right password unless one is given)."""
        query = "&".join(f"{k}={v}" for k, v in {"tls": "starttls", **options}.items())
        secret = self.password if password is None else password
        return f"smtp://{USER}:{secret}@127.0.0.1:{self.port}?{query}"

    def start(self) -> PostfixServer:
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
        conf, tls = self.root / "conf", self.root / "tls"
        for folder in (
            conf,
            tls,
            self.root / "queue",
            self.root / "data",
            self.root / "dovecot" / "run",
        ):
            folder.mkdir(parents=True)
        (self.root / "dovecot" / "state").mkdir()
        mail = self.root / "mail"
        mail.mkdir()
        os.chown(mail, uid, gid)
        cert, key = self_signed_loopback_cert(tls)
        cert.rename(self.cert)
        key.rename(tls / "key.pem")
        (tls / "key.pem").chmod(0o600)
        postfix = pwd.getpwnam("postfix")
        os.chown(self.root / "data", postfix.pw_uid, postfix.pw_gid)
        (conf / "main.cf").write_text(_MAIN_CF.format(root=self.root, uid=uid, gid=gid))
        (conf / "master.cf").write_text(_MASTER_CF.format(port=self.port))
        users = self.root / "dovecot" / "users"
        users.write_text(f"{USER}:{{PLAIN}}{self.password}::::::nodelay=yes\n")
        users.chmod(0o640)
        os.chown(users, 0, pwd.getpwnam("dovecot").pw_gid)
        (self.root / "dovecot.conf").write_text(
            _DOVECOT_CONF.format(
                root=self.root, mechanisms=" ".join(m.lower() for m in MECHANISMS), uid=uid,
                gid=gid,
            )
        )  # fmt: skip
        self.dovecot = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait(
            lambda: (self.root / "dovecot" / "run" / "auth-postfix").exists(),
            what="Dovecot's auth socket",
            log=self.root / "dovecot.log",
        )
        started = subprocess.run(
            [POSTFIX, "-c", str(conf), "start"], capture_output=True, text=True, timeout=60
        )
        if started.returncode != 0:
            why = f"{started.stderr.strip()} {self.log_text()[-2000:]}"
            self.stop()
            raise RuntimeError(f"postfix start failed: {why}")
        self.started = True
        self._wait(self._listening, what=f"Postfix on 127.0.0.1:{self.port}", log=self.log)
        return self

    def _listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def _wait(self, ready: Callable[[], bool], *, what: str, log: Path) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if ready():
                return
            if self.dovecot is not None and self.dovecot.poll() is not None:
                break
            time.sleep(0.05)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        self.stop()
        raise RuntimeError(f"{what} did not come up; log:\n{tail}")

    def stop(self) -> None:
        if self.started:
            subprocess.run(
                [POSTFIX, "-c", str(self.root / "conf"), "stop"], capture_output=True, timeout=60
            )
            self.started = False
        if self.dovecot is not None:
            self.dovecot.terminate()
            self.dovecot.wait(timeout=30)
            self.dovecot = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostfixServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what arrived, what was logged ----------------------------------------------------

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def failed_auth_lines(self) -> list[str]:
        """Postfix's log lines for refused AUTH commands."""
        return [line for line in self.log_text().splitlines() if FAILED_AUTH.search(line)]

    def delivered(self) -> list[EmailMessage]:
        """Every message in the catch-all Maildir (new/), parsed."""
        folder = self.maildir / "new"
        if not folder.is_dir():
            return []
        return [
            message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for path in sorted(folder.iterdir())
        ]
