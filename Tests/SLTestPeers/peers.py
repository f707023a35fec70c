#!/usr/bin/env python3
"""Test peers for sl's transport and tool tests: certificates, throwaway Postfix
instances (MX hosts and an outgoing gateway with the sl filter), a dnsmasq DNS
server and a scripted misbehaving SMTP server.

    peers.py certs DIR --names n1,n2,...
    peers.py postfix start --dir D --address A --port N --tls MODE --certs C --hostname H
    peers.py postfix stop --dir D
    peers.py gateway start --dir D --address A --port N --hostname H
                           --local-domains D1[,D2] --filter-service FILE [--main K=V]
    peers.py gateway stop|wait|queue|flush --dir D
    peers.py submit --address A --port N --from S --to R [--to R] < message
    peers.py dnsmasq start --dir D --port N [--mx D,H,P] [--a H,IP] [--aaaa H,IP] [--txt N,T]
                           [--nullmx D] [--records FILE] [--zone Z]
    peers.py dnsmasq stop --dir D
    peers.py dnssec start --dir D --zone Z --auth-port N --resolver-port M
                          [--rr "NAME TYPE RDATA"] [--tlsa NAME,U,S,M,PEM] [--bogus NAME]
                          [--forward ZONE,PORT]
    peers.py dnssec stop --dir D
    peers.py badserver --address A --port N --mode MODE [--certs C]
    peers.py postgres start --dir D --port N
    peers.py postgres stop --dir D

Standard library plus `cryptography` only.  See README.md beside this file.
"""

import argparse
import warnings
import datetime
import grp
import ipaddress
import os
import pwd
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

START_TIMEOUT = 30.0
POSTFIX_DAEMONS = "/usr/lib/postfix/sbin"


def die(message, code=1):
    sys.stderr.write("peers.py: %s\n" % message)
    sys.exit(code)


# ---------------------------------------------------------------- certificates

def cmd_certs(args):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names = [n.strip() for n in args.names.split(",") if n.strip()]
    if not names:
        die("--names needs at least one DNS name", 64)
    os.makedirs(args.dir, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    day = datetime.timedelta(days=1)

    def new_key():
        return ec.generate_private_key(ec.SECP256R1())

    def write(stem, cert, key):
        with open(os.path.join(args.dir, stem + ".pem"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        path = os.path.join(args.dir, stem + ".key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))

    def subject(cn):
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sl test peers"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def authority(cn):
        """A CA certificate and its key, valid for ten years."""
        key = new_key()
        name = subject(cn)
        cert = (x509.CertificateBuilder()
                .subject_name(name).issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - day).not_valid_after(now + 3650 * day)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        return name, key, cert

    ca_name, ca_key, ca = authority("sl throwaway test CA")
    write("ca", ca, ca_key)

    def leaf(stem, dns_names, not_before, not_after, self_signed=False, issuer=None):
        """issuer: (name, key) of the CA that signs; the test CA by default."""
        issuer_name, issuer_key = issuer or (ca_name, ca_key)
        key = new_key()
        name = subject(dns_names[0])
        builder = (x509.CertificateBuilder()
                   .subject_name(name)
                   .issuer_name(name if self_signed else issuer_name)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(not_before).not_valid_after(not_after)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True,
                                                content_commitment=False,
                                                key_encipherment=False,
                                                data_encipherment=False,
                                                key_agreement=False, key_cert_sign=False,
                                                crl_sign=False, encipher_only=False,
                                                decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                  critical=False)
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.DNSName(n) for n in dns_names]), critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False))
        if not self_signed:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                critical=False)
        cert = builder.sign(key if self_signed else issuer_key, hashes.SHA256())
        write(stem, cert, key)

    leaf("good", names, now - day, now + 365 * day)
    leaf("expired", names, now - 30 * day, now - day)
    leaf("wrongname", ["other.invalid"], now - day, now + 365 * day)
    leaf("selfsigned", names, now - day, now + 365 * day, self_signed=True)

    # DANE: DANE-EE(3) binds the key alone, so this self-signed certificate is
    # expired and names another host on purpose (RFC 7672 3.1.1).
    leaf("daneee", ["other.invalid"], now - 30 * day, now - day, self_signed=True)
    # DANE-TA(2): a private CA that is not in ca.pem (WebPKI cannot verify it); the
    # server sends it after the leaf (RFC 7671 5.2.2), in daneta.pem.
    dane_ca_name, dane_ca_key, dane_ca = authority("sl throwaway DANE-TA CA")
    write("daneca", dane_ca, dane_ca_key)
    leaf("daneta", names, now - day, now + 365 * day, issuer=(dane_ca_name, dane_ca_key))
    with open(os.path.join(args.dir, "daneta.pem"), "ab") as f:
        f.write(dane_ca.public_bytes(serialization.Encoding.PEM))


# ---------------------------------------------------------------- helpers

def wait_for_port(address, port, deadline, alive=None):
    """Polls until a TCP connect to address:port succeeds. False on timeout or
    when alive() says the server died."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1.0):
                return True
        except OSError:
            pass
        if alive is not None and not alive():
            return False
        time.sleep(0.05)
    return False


def port_free(address, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie counts as gone.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def group_members(pgid):
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] = state, fields[2] = pgrp
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def log_tail(path, lines=30):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return "(no log at %s)\n" % path
    text = b"\n".join(data.splitlines()[-lines:]).decode("utf-8", "replace")
    return text + "\n"


def make_traversable(path):
    """The Postfix daemons and the virtual delivery agent run as the postfix
    user: every directory above D must let others search it (o+x)."""
    path = os.path.abspath(path)
    while True:
        st = os.stat(path)
        if not st.st_mode & 0o001:
            os.chmod(path, (st.st_mode & 0o7777) | 0o001)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent


# ---------------------------------------------------------------- postfix

MASTER_CF = """\
# service   type  private unpriv  chroot  wakeup  maxproc command
{listen}    inet  n       -       n       -       -       smtpd
pickup      unix  n       -       n       60      1       pickup
cleanup     unix  n       -       n       -       0       cleanup
qmgr        unix  n       -       n       300     1       qmgr
tlsmgr      unix  -       -       n       1000?   1       tlsmgr
rewrite     unix  -       -       n       -       -       trivial-rewrite
bounce      unix  -       -       n       -       0       bounce
defer       unix  -       -       n       -       0       bounce
trace       unix  -       -       n       -       0       bounce
verify      unix  -       -       n       -       1       verify
flush       unix  n       -       n       1000?   0       flush
proxymap    unix  -       -       n       -       -       proxymap
smtp        unix  -       -       n       -       -       smtp
relay       unix  -       -       n       -       -       smtp
showq       unix  n       -       n       -       -       showq
error       unix  -       -       n       -       -       error
retry       unix  -       -       n       -       -       error
discard     unix  -       -       n       -       -       discard
local       unix  -       n       n       -       -       local
virtual     unix  -       n       n       -       -       virtual
anvil       unix  -       -       n       -       1       anvil
scache      unix  -       -       n       -       1       scache
postlog     unix-dgram n  -       n       -       1       postlogd
"""

CERT_FOR_MODE = {"on": "good", "expired": "expired", "wrongname": "wrongname",
                 "selfsigned": "selfsigned", "dane-ee": "daneee", "dane-ta": "daneta"}

# The queue directories owned by the mail owner, mode 0700 (postfix-files).
QUEUE_NAMES = ("active", "bounce", "corrupt", "defer", "deferred", "flush", "hold",
               "incoming", "private", "saved", "trace")


def postfix_paths(d):
    d = os.path.abspath(d)
    return {
        "dir": d,
        "config": os.path.join(d, "etc"),
        "queue": os.path.join(d, "queue"),
        "data": os.path.join(d, "data"),
        "log": os.path.join(d, "maillog"),
        "pid": os.path.join(d, "queue", "pid", "master.pid"),
        "maildir": os.path.join(d, "Maildir"),
    }


def prepare_postfix_dirs(p):
    """Makes D, its queue (as postfix-files would), data directory and Maildir.
    Returns the postfix user's (uid, gid)."""
    owner = pwd.getpwnam("postfix")
    postdrop = grp.getgrnam("postdrop").gr_gid
    uid, gid = owner.pw_uid, owner.pw_gid

    os.makedirs(p["dir"], exist_ok=True)
    os.chmod(p["dir"], 0o755)
    make_traversable(p["dir"])
    os.makedirs(p["config"], exist_ok=True)

    # Queue layout as postfix-files would make it.
    os.makedirs(p["queue"], exist_ok=True)
    os.chown(p["queue"], 0, 0)
    os.chmod(p["queue"], 0o755)
    layout = [("pid", 0, 0, 0o755)]
    for sub in QUEUE_NAMES:
        layout.append((sub, uid, 0, 0o700))
    layout += [("maildrop", uid, postdrop, 0o730), ("public", uid, postdrop, 0o710)]
    for sub, u, g, mode in layout:
        path = os.path.join(p["queue"], sub)
        os.makedirs(path, exist_ok=True)
        os.chown(path, u, g)
        os.chmod(path, mode)
    os.makedirs(p["data"], exist_ok=True)
    os.chown(p["data"], uid, gid)
    os.chmod(p["data"], 0o700)
    for sub in ("", "new", "cur", "tmp"):
        path = os.path.join(p["maildir"], sub)
        os.makedirs(path, exist_ok=True)
        os.chown(path, uid, gid)
        os.chmod(path, 0o755)
    return uid, gid


def base_main_cf(p, hostname, uid, gid):
    """main.cf of every instance: all under D, smtpd for 127.0.0.0/8, logs in
    D/maillog, every domain in virtual_mailbox_domains delivered to D/Maildir."""
    return {
        "compatibility_level": "3.6",
        "config_directory": p["config"],
        "queue_directory": p["queue"],
        "data_directory": p["data"],
        "command_directory": "/usr/sbin",
        "daemon_directory": POSTFIX_DAEMONS,
        "meta_directory": "/etc/postfix",
        "shlib_directory": "/usr/lib/postfix",
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "myhostname": hostname,
        "mydestination": "",
        "relayhost": "",
        # Postfix insists that inet_interfaces name addresses of a network
        # interface; 127.0.0.2..255 are routed to lo but are not addresses of it.
        # The master.cf line binds the smtpd listener to ADDRESS:PORT alone.
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "smtpd_banner": "$myhostname ESMTP",
        "smtpd_peername_lookup": "no",
        "biff": "no",
        "alias_maps": "",
        "alias_database": "",
        "local_recipient_maps": "",
        "append_dot_mydomain": "no",
        "maillog_file": p["log"],
        "maillog_file_prefixes": p["dir"],
        "virtual_mailbox_domains": "static:all",
        "virtual_mailbox_maps": "static:Maildir/",
        "virtual_mailbox_base": p["dir"],
        "virtual_uid_maps": "static:%d" % uid,
        "virtual_gid_maps": "static:%d" % gid,
        "virtual_mailbox_limit": "0",
        "smtp_tls_security_level": "none",
    }


def postfix_running(p):
    pid = read_pid(p["pid"])
    return pid is not None and pid_alive(pid)


def start_postfix(p, address, port, main, master_cf):
    """Writes main.cf (the dict, in order) and master.cf into D/etc, starts the
    master and returns once ADDRESS:PORT accepts connections. On failure prints
    the end of the log, stops what started and exits 1."""
    with open(os.path.join(p["config"], "main.cf"), "w") as f:
        f.write("# Written by Tests/SLTestPeers/peers.py; throwaway instance.\n")
        for key, value in main.items():
            f.write("%s = %s\n" % (key, value))
    with open(os.path.join(p["config"], "master.cf"), "w") as f:
        f.write(master_cf)
    # Postfix re-reads a configuration file modified within the last second or
    # two until it is older (a file being edited); backdating saves ~2 s a start.
    past = time.time() - 10
    for name in ("main.cf", "master.cf"):
        os.utime(os.path.join(p["config"], name), (past, past))
    # A fresh log per start, so that a failure shows this start's story.
    with open(p["log"], "w"):
        pass
    os.chmod(p["log"], 0o644)

    deadline = time.monotonic() + START_TIMEOUT
    # master -w: the foreground process returns once the daemon has initialised.
    # Running master directly avoids `postfix -c`, which insists on
    # /etc/postfix/main.cf listing this directory in alternate_config_directories.
    env = dict(os.environ, MAIL_CONFIG=p["config"])
    # Output to a file, not a pipe: the daemon inherits the descriptor for a
    # while, and reading a pipe to its end would wait for that.
    with open(os.path.join(p["dir"], "master.out"), "w+b") as out:
        proc = subprocess.run([os.path.join(POSTFIX_DAEMONS, "master"), "-w",
                               "-c", p["config"]],
                              stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                              env=env, cwd=p["dir"], timeout=START_TIMEOUT)
        out.seek(0)
        master_output = out.read()

    if proc.returncode == 0 and wait_for_port(address, port, deadline,
                                              lambda: postfix_running(p)):
        return
    sys.stderr.write("peers.py: Postfix did not start in %s (master exit %d)\n"
                     % (p["dir"], proc.returncode))
    if master_output:
        sys.stderr.write(master_output.decode("utf-8", "replace"))
    sys.stderr.write(log_tail(p["log"]))
    if os.path.getsize(p["log"]) == 0:
        sys.stderr.write("(master reports errors before its log daemon runs only to "
                         "syslog; try: postconf -c %s -n)\n" % p["config"])
    stop_postfix(p)
    sys.exit(1)


def check_can_start(p, address, port):
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        die("--address must be an IPv4 address", 64)
    pid = read_pid(p["pid"])
    if pid is not None and pid_alive(pid):
        die("a Postfix instance is already running in %s (pid %d)" % (p["dir"], pid))
    # Postfix listens with SO_REUSEPORT: a second instance on a busy ADDRESS:PORT
    # would start "fine" and share the connections. Refuse instead.
    if not port_free(address, port):
        die("%s:%d is already in use" % (address, port))


def cmd_postfix_start(args):
    p = postfix_paths(args.dir)
    check_can_start(p, args.address, args.port)
    uid, gid = prepare_postfix_dirs(p)
    main = base_main_cf(p, args.hostname, uid, gid)
    # later.test: a domain this MX defers (451) for every recipient, so that the
    # tests have real deferred items in sl-deliver's queue.
    main["smtpd_recipient_restrictions"] = ("check_recipient_access inline:{ { later.test = 451 4.3.2 Try again later } }, "
                                            "permit_mynetworks, reject_unauth_destination")
    if args.tls == "off":
        main["smtpd_tls_security_level"] = "none"
    else:
        certs = os.path.abspath(args.certs or die("--certs is needed with --tls %s" % args.tls, 64))
        stem = os.path.join(certs, CERT_FOR_MODE[args.tls])
        for ext in (".pem", ".key"):
            if not os.path.exists(stem + ext):
                die("missing %s (run: peers.py certs %s --names ...)" % (stem + ext, certs), 66)
        main.update({
            "smtpd_tls_security_level": "may",
            "smtpd_tls_chain_files": "%s.key, %s.pem" % (stem, stem),
            "smtpd_tls_loglevel": "1",
            "smtpd_tls_received_header": "yes",
        })
    start_postfix(p, args.address, args.port, main,
                  MASTER_CF.format(listen="%s:%d" % (args.address, args.port)))


def stop_postfix(p, timeout=START_TIMEOUT):
    pid = read_pid(p["pid"])
    if pid is None or not pid_alive(pid):
        return True
    deadline = time.monotonic() + timeout
    # master is a session and process group leader; its children share its group.
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    while time.monotonic() < deadline:
        if not pid_alive(pid) and not group_members(pid):
            return True
        time.sleep(0.05)
    for member in group_members(pid):
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return False


def cmd_postfix_stop(args):
    p = postfix_paths(args.dir)
    if not stop_postfix(p):
        die("Postfix in %s did not stop in time; killed" % p["dir"])


# ---------------------------------------------------------------- gateway

GATEWAY_USER = "sl"
# What the gateway's queue manager is still working on; deferred and hold are not.
BUSY_QUEUES = ("maildrop", "incoming", "active")


def ensure_filter_user():
    """pipe(8) runs the filter as user=sl: not root, not the mail owner."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            pwd.getpwnam(GATEWAY_USER)
            return
        except KeyError:
            pass
        proc = subprocess.run(["useradd", "--system", "--create-home",
                               "--home-dir", "/var/lib/" + GATEWAY_USER, "--shell", "/usr/sbin/nologin",
                               GATEWAY_USER],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
        # Gateways starting side by side: useradd fails while another one holds
        # the lock on /etc/passwd, or because that one made the user first.
        if proc.returncode != 0 and time.monotonic() > deadline:
            die("cannot create user %s: %s" % (GATEWAY_USER,
                                               proc.stdout.decode("utf-8", "replace").strip()))
        if proc.returncode != 0:
            time.sleep(0.1)


def main_setting(text):
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or not key.replace("_", "").isalnum():
        die("--main wants KEY=VALUE, got %r" % text, 64)
    return key, value.strip()


def cmd_gateway_start(args):
    p = postfix_paths(args.dir)
    domains = [d.strip().lower().rstrip(".") for d in args.local_domains.split(",")]
    domains = [d for d in domains if d]
    if not domains:
        die("--local-domains needs at least one domain", 64)
    overrides = [main_setting(m) for m in args.main or []]
    try:
        with open(args.filter_service) as f:
            service = f.read()
    except OSError as error:
        die("--filter-service: %s" % error, 66)
    if not service.endswith("\n"):
        service += "\n"
    check_can_start(p, args.address, args.port)
    ensure_filter_user()
    uid, gid = prepare_postfix_dirs(p)

    # Any recipient outside the local domains sends the whole message (all its
    # recipients) through the content filter sl:dummy (access(5) FILTER).
    # regexp tables are case-insensitive by default.
    table = os.path.join(p["config"], "sl_filter")
    with open(table, "w") as f:
        f.write("# Written by Tests/SLTestPeers/peers.py: recipients outside %s\n"
                % ", ".join(domains))
        f.write("!/@(%s)$/ FILTER sl:dummy\n" % "|".join(re.escape(d) for d in domains))
    past = time.time() - 10
    os.utime(table, (past, past))

    main = base_main_cf(p, args.hostname, uid, gid)
    error = "error:not through the sl filter"
    main.update({
        # Local domains: Postfix delivers to D/Maildir itself.
        "virtual_mailbox_domains": ", ".join(domains),
        # Everything else leaves through the filter only; a route around it
        # shows as a bounce, not as a delivery attempt.
        "default_transport": error,
        "relay_transport": error,
        # Else smtpd would reject at RCPT every recipient that resolves to the
        # error transport, FILTER or not. Every local address is listed anyway
        # (virtual_mailbox_maps = static:...), so this check had nothing else to do.
        "smtpd_reject_unlisted_recipient": "no",
        "smtpd_recipient_restrictions": "check_recipient_access regexp:%s, "
                                        "permit_mynetworks, reject_unauth_destination"
                                        % table,
        "sl_destination_recipient_limit": "50",
        # Deferred mail waits for `gateway flush`, which retries it at once
        # whatever these say (Postfix's defaults, written out). Not 1s: a message
        # deferred for 1 s is due at the queue manager's next scan, which can
        # find the file still locked by pipe(8) (the status comes before the
        # close); "skipped, still being delivered" then parks it in incoming for
        # 60 s. 2s/4s retries by itself safely.
        "queue_run_delay": "300s",
        "minimal_backoff_time": "300s",
        "maximal_backoff_time": "4000s",
        "smtpd_tls_security_level": "none",
    })
    for key, value in overrides:
        main[key] = value
    master_cf = (MASTER_CF.format(listen="%s:%d" % (args.address, args.port))
                 + "# --filter-service %s\n" % os.path.abspath(args.filter_service)
                 + service)
    start_postfix(p, args.address, args.port, main, master_cf)


def queue_ids(p, names):
    """Queue IDs of the files under the named queues (hashed subdirectories
    included): a queue file and its logs are named by the queue ID."""
    ids = set()
    for name in names:
        for _, _, files in os.walk(os.path.join(p["queue"], name)):
            ids.update(files)
    return ids


def cmd_gateway_wait(args):
    p = postfix_paths(args.dir)
    if not postfix_running(p):
        die("no gateway is running in %s" % p["dir"])
    deadline = time.monotonic() + args.timeout
    quiet = 0
    # A message is in incoming from before smtpd's 250 until the queue manager
    # takes it into active, and stays in active until every recipient is
    # delivered, bounced (the bounce is queued first) or deferred. Idle twice in
    # a row, to step over any hand-over between queues.
    while True:
        if not queue_ids(p, BUSY_QUEUES):
            quiet += 1
            if quiet >= 2:
                return
        else:
            quiet = 0
        if time.monotonic() > deadline:
            sys.stderr.write("peers.py: gateway %s still busy after %gs:\n%s"
                             % (p["dir"], args.timeout, log_tail(p["log"], 10)))
            sys.exit(1)
        time.sleep(0.05)


def deferred_sample(p):
    """(messages with deferred recipients, messages whose fate is open): the
    first are in deferred or hold, or in active with a defer log (deferred again
    in the attempt under way); the second are in maildrop, incoming or active
    without one (a new message, or a retry: the queue manager deletes the defer
    log when it takes a deferred message back into active)."""
    busy = queue_ids(p, BUSY_QUEUES)
    logged = queue_ids(p, ("defer",))
    waiting = queue_ids(p, ("deferred", "hold"))
    return waiting | (busy & logged), busy - logged - waiting


def cmd_gateway_queue(args):
    p = postfix_paths(args.dir)
    # The directories are read one after the other while the queue manager
    # moves files: count once two samples in a row agree and no attempt is
    # under way (with short backoff times, retries come all the time).
    deadline = time.monotonic() + args.timeout
    previous = None
    while True:
        deferred, open_ = deferred_sample(p)
        if not open_ and deferred == previous:
            print(len(deferred))
            return
        previous = None if open_ else deferred
        if time.monotonic() > deadline:
            die("gateway %s: still delivering after %gs: %s"
                % (p["dir"], args.timeout, " ".join(sorted(open_))))
        time.sleep(0.02)


def cmd_gateway_flush(args):
    p = postfix_paths(args.dir)
    if not postfix_running(p):
        die("no gateway is running in %s" % p["dir"])
    # First a moment with no delivery attempt under way (at most 5 s): a
    # message being retried by itself is neither deferred nor sure to be
    # retried once more.
    settle = time.monotonic() + 5
    while queue_ids(p, BUSY_QUEUES) and time.monotonic() < settle:
        time.sleep(0.02)
    try:
        offset = os.path.getsize(p["log"])
    except OSError:
        offset = 0
    waiting = queue_ids(p, ("deferred",))
    # As root, postqueue takes any configuration directory (others only those
    # in /etc/postfix/main.cf's alternate_config_directories). It asks the
    # queue manager to retry all deferred mail, backoff times notwithstanding.
    env = dict(os.environ, MAIL_CONFIG=p["config"])
    proc = subprocess.run(["postqueue", "-c", p["config"], "-f"], env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        die("postqueue -f failed (%d): %s"
            % (proc.returncode, proc.stdout.decode("utf-8", "replace").strip()))
    # postqueue returns once the request is written; return once every message
    # that was deferred has been taken into active again (the queue manager logs
    # "ID: from=<...> (queue active)"), so that `gateway wait` right after waits
    # for the retries instead of seeing nothing busy yet.
    deadline = time.monotonic() + args.timeout
    while True:
        with open(p["log"], "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        retried = {line.split(": from=<", 1)[0].rsplit(" ", 1)[-1]
                   for line in text.splitlines()
                   if ": from=<" in line and line.endswith("(queue active)")}
        # Gone from every queue counts too (delivered by an automatic retry).
        waiting &= queue_ids(p, ("deferred", "incoming", "active", "hold"))
        waiting -= retried
        if not waiting:
            return
        if time.monotonic() > deadline:
            die("gateway %s: not retried after %gs: %s"
                % (p["dir"], args.timeout, " ".join(sorted(waiting))))
        time.sleep(0.05)


def cmd_gateway_stop(args):
    p = postfix_paths(args.dir)
    if not stop_postfix(p):
        die("gateway in %s did not stop in time; killed" % p["dir"])


# ---------------------------------------------------------------- submit

def cmd_submit(args):
    """One SMTP transaction; on any refusal the reply goes to stderr (where
    Peers.run looks) and the exit status is 1."""
    import smtplib
    data = sys.stdin.buffer.read()
    # SMTP wants CRLF; smtplib dot-stuffs bytes but leaves bare LFs alone.
    data = re.sub(rb"\r?\n", b"\r\n", data)
    addresses = [args.sender] + args.to
    try:
        with smtplib.SMTP(args.address, args.port, timeout=args.timeout) as smtp:
            code, reply = smtp.ehlo("submit.peers.invalid")
            if code != 250:
                refused("EHLO", code, reply)
            options = []
            if any(b >= 0x80 for b in data) and smtp.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
            if any(not a.isascii() for a in addresses):
                options.append("SMTPUTF8")
            code, reply = smtp.mail(args.sender, options)
            if code != 250:
                refused("MAIL FROM:<%s>" % args.sender, code, reply)
            failed = False
            for rcpt in args.to:
                code, reply = smtp.rcpt(rcpt)
                if code not in (250, 251):
                    refused("RCPT TO:<%s>" % rcpt, code, reply, exit=False)
                    failed = True
            if failed:
                sys.exit(1)
            code, reply = smtp.data(data)
            if code != 250:
                refused("DATA", code, reply)
    except (smtplib.SMTPException, OSError) as error:
        sys.stderr.write("peers.py: submit to %s:%d: %s\n" % (args.address, args.port, error))
        sys.exit(1)


def refused(what, code, reply, exit=True):
    sys.stderr.write("%s: %d %s\n" % (what, code, reply.decode("utf-8", "replace")))
    if exit:
        sys.exit(1)


# ---------------------------------------------------------------- dnsmasq

RECORD_KINDS = ("mx", "a", "aaaa", "nullmx", "txt", "zone")


def dns_query(server, port, name, qtype=1, timeout=1.0):
    """One UDP query; returns the rcode, or None without an answer."""
    qid = random.randrange(65536)
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        packet += bytes([len(label)]) + label.encode("ascii")
    packet += b"\x00" + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            # Connected, so that a port nobody listens on yet fails at once.
            s.connect((server, port))
            s.send(packet)
            reply = s.recv(4096)
        except OSError:
            return None
    if len(reply) < 12 or struct.unpack(">H", reply[:2])[0] != qid:
        return None
    return struct.unpack(">H", reply[2:4])[0] & 0x000F


def read_records(path):
    """Lines like `--mx on.test,mx.on.test,10`, `mx on.test,mx.on.test,10` or
    `mx=on.test,...`; blank lines and # comments are skipped."""
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            line = line.lstrip("-")
            for sep in ("=", " ", "\t"):
                if sep in line:
                    kind, value = line.split(sep, 1)
                    break
            else:
                die("%s:%d: expected OPTION VALUE" % (path, number), 65)
            kind = kind.strip().lower()
            if kind not in RECORD_KINDS:
                die("%s:%d: unknown option %r" % (path, number, kind), 65)
            records.append((kind, value.strip()))
    return records


def cmd_dnsmasq_start(args):
    d = os.path.abspath(args.dir)
    os.makedirs(d, exist_ok=True)
    pid_file = os.path.join(d, "dnsmasq.pid")
    log_file = os.path.join(d, "dnsmasq.log")
    pid = read_pid(pid_file)
    if pid is not None and pid_alive(pid):
        die("dnsmasq already running in %s (pid %d)" % (d, pid))

    records = []
    for kind in RECORD_KINDS:
        for value in getattr(args, kind) or []:
            records.append((kind, value))
    for path in args.records or []:
        records.extend(read_records(path))

    lines, zones, names = [], set(), []

    def parts(value, count, kind):
        fields = [x.strip() for x in value.split(",")]
        if len(fields) != count or not all(fields):
            die("--%s wants %d comma-separated fields, got %r" % (kind, count, value), 64)
        return fields

    for kind, value in records:
        if kind == "mx":
            domain, host, pref = parts(value, 3, kind)
            lines.append("mx-host=%s,%s,%d" % (domain, host, int(pref)))
            names.append(domain)
        elif kind == "nullmx":
            domain = parts(value, 1, kind)[0]
            # RFC 7505: MX 0 "." written as raw RDATA (preference 0, root name).
            lines.append("dns-rr=%s,15,000000" % domain)
            names.append(domain)
        elif kind in ("a", "aaaa"):
            host, ip = parts(value, 2, kind)
            address = ipaddress.ip_address(ip)
            if (kind == "a") != (address.version == 4):
                die("--%s %s: wrong address family" % (kind, value), 64)
            lines.append("host-record=%s,%s" % (host, address))
            names.append(host)
        elif kind == "txt":
            # NAME,TEXT[|TEXT...]: one TXT record, each TEXT one character-string
            # (commas are the record's own: MTA-STS and TLSRPT lists use them)
            if "," not in value:
                die("--txt wants NAME,TEXT[|TEXT...], got %r" % value, 64)
            name, text = value.split(",", 1)   # TEXT is kept as written, spaces too
            name = name.strip()
            strings = text.split("|")
            if not name or any('"' in x or "\\" in x for x in strings):
                die("--txt wants NAME,TEXT[|TEXT...] without quotes or backslashes, got %r" % value, 64)
            lines.append("txt-record=%s,%s" % (name, ",".join('"%s"' % x for x in strings)))
            names.append(name)
        elif kind == "zone":
            zones.add(parts(value, 1, kind)[0].strip(".").lower())
    # Never forward: every top-level name we serve is answered here alone, so
    # unknown names in it get NXDOMAIN.
    for name in names:
        zones.add(name.rstrip(".").rsplit(".", 1)[-1].lower())
    # .invalid (RFC 6761) is always local: the readiness query asks there.
    zones.add("invalid")
    for zone in sorted(zones):
        lines.append("local=/%s/" % zone)

    conf = os.path.join(d, "dnsmasq.conf")
    with open(conf, "w") as f:
        f.write("# Written by Tests/Peers/peers.py\n")
        f.write("\n".join(lines) + "\n")

    command = ["dnsmasq", "--no-daemon", "--conf-file=" + conf, "--no-resolv", "--no-hosts",
               "--no-poll", "--listen-address=127.0.0.1", "--bind-interfaces",
               "--port=%d" % args.port, "--user=root", "--log-facility=-"]
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    with open(pid_file, "w") as f:
        f.write("%d\n" % proc.pid)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if dns_query("127.0.0.1", args.port, "peers-ready-check.invalid",
                     timeout=0.25) is not None:
            return
        time.sleep(0.05)
    sys.stderr.write("peers.py: dnsmasq did not answer on 127.0.0.1:%d\n" % args.port)
    sys.stderr.write(log_tail(log_file))
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    sys.exit(1)


def cmd_dnsmasq_stop(args):
    d = os.path.abspath(args.dir)
    pid = read_pid(os.path.join(d, "dnsmasq.pid"))
    if pid is None or not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    die("dnsmasq in %s did not stop in time; killed" % d)


# ---------------------------------------------------------------- DNSSEC

def tlsa_rdata(value):
    import hashlib
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    fields = [x.strip() for x in value.split(",")]
    if len(fields) != 5:
        die("--tlsa wants NAME,USAGE,SELECTOR,MTYPE,PEM|hex:DATA, got %r" % value, 64)
    name, usage, selector, mtype, source = fields
    usage, selector, mtype = int(usage), int(selector), int(mtype)
    if source.startswith("hex:"):
        data = bytes.fromhex(source[4:])
    else:
        pems = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
                          open(source, "rb").read(), re.S)
        if not pems:
            die("%s holds no certificate" % source, 66)
        # DANE-TA names the chain's last certificate (the anchor), DANE-EE the first.
        cert = x509.load_pem_x509_certificate(pems[-1] if usage in (0, 2) else pems[0])
        if selector == 0:
            data = cert.public_bytes(serialization.Encoding.DER)
        else:
            data = cert.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        if mtype == 1:
            data = hashlib.sha256(data).digest()
        elif mtype == 2:
            data = hashlib.sha512(data).digest()
    return name, "TLSA %d %d %d %s" % (usage, selector, mtype, data.hex())


def run_checked(argv, cwd=None):
    proc = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        die("%s failed (%d): %s" % (" ".join(argv[:2]), proc.returncode,
                                     proc.stderr.decode("utf-8", "replace")[-2000:]))
    return proc.stdout.decode()


def start_daemon(argv, d, name):
    log = os.path.join(d, name + ".out")
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, close_fds=True, cwd=d)
    with open(os.path.join(d, name + ".pid"), "w") as f:
        f.write("%d\n" % proc.pid)
    return proc


def wait_for_dns(proc, port, name, log_files, expect_rcode=0, address="127.0.0.1"):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if dns_query(address, port, name, qtype=6, timeout=0.25) == expect_rcode:
            return True
        time.sleep(0.05)
    sys.stderr.write("peers.py: no answer for %s on %s:%d\n" % (name, address, port))
    for path in log_files:
        sys.stderr.write(log_tail(path))
    return False


def cmd_dnssec_start(args):
    """Signs ZONE with a fresh KSK (ECDSA P-256, ldns-signzone), serves it with NSD on
    127.0.0.1:AUTH_PORT and starts Unbound on 127.0.0.1:RESOLVER_PORT with the zone's
    DS as its only trust anchor: answers in ZONE come back with AD, a corrupted
    RRSIG (--bogus) as SERVFAIL, forwarded unsigned zones as insecure."""
    for tool in ("nsd", "unbound", "ldns-keygen", "ldns-signzone"):
        if shutil.which(tool) is None and not os.path.exists("/usr/sbin/" + tool):
            die("%s missing (apt-get install nsd unbound ldnsutils)" % tool, 69)
    d = os.path.abspath(args.dir)
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    zone = args.zone.strip(".").lower()
    for name in ("nsd", "unbound"):
        pid = read_pid(os.path.join(d, name + ".pid"))
        if pid is not None and pid_alive(pid):
            die("%s already running in %s (pid %d)" % (name, d, pid))

    lines = ["$ORIGIN %s." % zone, "$TTL 300",
             "@ SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300" % (zone, zone),
             "@ NS ns.%s." % zone, "ns A 127.0.0.1"]
    lines += args.rr or []
    tlsa_names = []
    for value in args.tlsa or []:
        name, rdata = tlsa_rdata(value)
        lines.append("%s %s" % (name, rdata))
        tlsa_names.append(name)
    with open(os.path.join(d, "zone"), "w") as f:
        f.write("\n".join(lines) + "\n")

    # A KSK that signs everything (a CSK): one key, one DS, the trust anchor.
    for old in os.listdir(d):
        if old.startswith("K" + zone + "."):
            os.unlink(os.path.join(d, old))
    key = run_checked(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", zone], cwd=d).strip()
    yesterday = time.strftime("%Y%m%d", time.gmtime(time.time() - 86400))
    run_checked(["ldns-signzone", "-i", yesterday, "-f", os.path.join(d, "zone.signed"),
                 os.path.join(d, "zone"), os.path.join(d, key)], cwd=d)
    shutil.copy(os.path.join(d, key + ".ds"), os.path.join(d, "trust-anchor.ds"))

    if args.bogus:
        owners = set("%s.%s." % (n.rstrip("."), zone) if not n.endswith(".") else n
                     for n in args.bogus)
        out = []
        for line in open(os.path.join(d, "zone.signed")):
            fields = line.split()
            if (len(fields) > 5 and fields[0].lower() in owners and fields[3] == "RRSIG"
                    and fields[4] == "TLSA"):
                # Flip the signature's first base64 character: still well-formed,
                # no longer valid, so a validating resolver calls the answer bogus.
                sig = fields[-1]
                fields[-1] = ("B" if sig[0] != "B" else "C") + sig[1:]
                line = "\t".join(fields) + "\n"
            out.append(line)
        with open(os.path.join(d, "zone.signed"), "w") as f:
            f.writelines(out)

    with open(os.path.join(d, "nsd.conf"), "w") as f:
        f.write("""server:
    ip-address: 127.0.0.1@{port}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    pidfile: "{d}/nsd-own.pid"
    logfile: "{d}/nsd.log"
    server-count: 1
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: "{zone}"
    zonefile: "{d}/zone.signed"
""".format(port=args.auth_port, d=d, zone=zone))
    nsd = start_daemon(["/usr/sbin/nsd", "-d", "-c", os.path.join(d, "nsd.conf")], d, "nsd")
    if not wait_for_dns(nsd, args.auth_port, zone, [os.path.join(d, "nsd.out"), os.path.join(d, "nsd.log")]):
        cmd_dnssec_stop(args)
        sys.exit(1)

    forwards = ""
    for value in args.forward or []:
        fz, fport = [x.strip() for x in value.split(",")]
        forwards += ('forward-zone:\n    name: "%s."\n    forward-addr: 127.0.0.1@%d\n'
                     'server:\n    domain-insecure: "%s."\n'
                     % (fz.strip("."), int(fport), fz.strip(".")))
    with open(os.path.join(d, "unbound.conf"), "w") as f:
        f.write("""server:
    interface: {raddress}
    port: {rport}
    do-ip6: no
    do-not-query-localhost: no
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: "{d}/unbound-own.pid"
    use-syslog: no
    logfile: "{d}/unbound.log"
    verbosity: 1
    access-control: 127.0.0.0/8 allow
    module-config: "validator iterator"
    trust-anchor-file: "{d}/trust-anchor.ds"
    val-permissive-mode: no
    harden-dnssec-stripped: yes
    qname-minimisation: no
    local-zone: "test." nodefault
    domain-insecure: "test."
    cache-max-negative-ttl: 1
    val-bogus-ttl: 1
stub-zone:
    name: "{zone}."
    stub-addr: 127.0.0.1@{aport}
remote-control:
    control-enable: no
{forwards}""".format(rport=args.resolver_port, raddress=args.resolver_address, d=d, zone=zone, aport=args.auth_port,
                     forwards=forwards))
    unbound = start_daemon(["/usr/sbin/unbound", "-d", "-c", os.path.join(d, "unbound.conf")],
                           d, "unbound")
    if not wait_for_dns(unbound, args.resolver_port, zone,
                        [os.path.join(d, "unbound.out"), os.path.join(d, "unbound.log")],
                        address=args.resolver_address):
        cmd_dnssec_stop(args)
        sys.exit(1)


def cmd_dnssec_stop(args):
    d = os.path.abspath(args.dir)
    failed = []
    for name in ("unbound", "nsd"):
        pid = read_pid(os.path.join(d, name + ".pid"))
        if pid is None or not pid_alive(pid):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            failed.append(name)
    if failed:
        die("%s in %s did not stop in time; killed" % (", ".join(failed), d))


# ---------------------------------------------------------------- bad server

BAD_MODES = ("injection", "nostarttls", "garbage", "silent", "stall-handshake", "ok", "tls10", "requiretls")


class Conversation:
    def __init__(self, sock, args, tls_context):
        self.sock = sock
        self.args = args
        self.tls_context = tls_context
        self.buffer = b""
        self.encrypted = False

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                return None
            self.buffer += chunk
            if len(self.buffer) > 65536:
                return None
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.rstrip(b"\r").decode("latin-1")

    def drain_forever(self):
        """Never answers; returns when the client goes away."""
        while True:
            if not self.sock.recv(4096):
                return

    def ehlo_reply(self):
        host = self.args.hostname
        features = ["PIPELINING", "SIZE 10240000", "8BITMIME"]
        if not self.encrypted and self.args.mode != "nostarttls":
            features.append("STARTTLS")
        if self.encrypted and self.args.mode == "requiretls":
            # RFC 8689: offered only over TLS (Postfix does not implement it).
            features.append("REQUIRETLS")
        lines = [host] + features
        return "".join("250%s%s\r\n" % ("-" if i < len(lines) - 1 else " ", text)
                       for i, text in enumerate(lines)).encode()

    def starttls(self, reply):
        self.send(reply)
        if self.args.mode == "stall-handshake":
            self.drain_forever()
            return False
        if self.buffer:
            # A client that pipelined after STARTTLS: nothing sane to do.
            return False
        self.sock = self.tls_context.wrap_socket(self.sock, server_side=True)
        self.encrypted = True
        self.buffer = b""
        return True

    def run(self):
        mode = self.args.mode
        if mode == "silent":
            self.drain_forever()
            return
        if mode == "garbage":
            self.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
                      b"\x00\xff\xfe\x16\x03\x01\x00\x05junk\r\n")
            return
        self.send(("220 %s ESMTP scripted test server\r\n" % self.args.hostname).encode())
        in_data = False
        while True:
            line = self.line()
            if line is None:
                return
            if in_data:
                if line == ".":
                    in_data = False
                    self.send(b"250 2.0.0 Ok: discarded\r\n")
                continue
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.send(self.ehlo_reply())
            elif verb == "HELO":
                self.send(("250 %s\r\n" % self.args.hostname).encode())
            elif verb == "STARTTLS":
                if mode == "nostarttls" or self.encrypted:
                    self.send(b"502 5.5.1 Error: command not implemented\r\n")
                    continue
                if mode == "injection":
                    reply = b"220 2.0.0 Ready to start TLS\r\n250 injected\r\n"
                else:
                    reply = b"220 2.0.0 Ready to start TLS\r\n"
                try:
                    if not self.starttls(reply):
                        return
                except (ssl.SSLError, OSError):
                    return
            elif verb in ("NOOP", "RSET"):
                self.send(b"250 2.0.0 Ok\r\n")
            elif verb in ("MAIL", "RCPT"):
                if verb == "MAIL" and self.args.log:
                    with open(self.args.log, "a") as log:
                        log.write("%s%s\n" % ("TLS " if self.encrypted else "", line))
                params = line.upper().split()[2:] if verb == "MAIL" else []
                if "REQUIRETLS" in params and not (self.encrypted and mode == "requiretls"):
                    self.send(b"555 5.5.4 REQUIRETLS not offered\r\n")
                    continue
                self.send(b"250 2.1.0 Ok\r\n")
            elif verb == "DATA":
                self.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                in_data = True
            elif verb == "QUIT":
                self.send(b"221 2.0.0 Bye\r\n")
                return
            else:
                self.send(b"500 5.5.2 Error: command not recognized\r\n")


def tls_context_for(args):
    if args.mode not in ("injection", "ok", "tls10", "requiretls"):
        return None
    if not args.certs:
        die("--mode %s needs --certs CERTDIR (with good.pem/good.key)" % args.mode, 64)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if args.mode == "tls10":
        # OpenSSL 3 allows TLS 1.0/1.1 only at security level 0.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(os.path.join(args.certs, "good.pem"),
                            os.path.join(args.certs, "good.key"))
    return context


def cmd_badserver(args):
    context = tls_context_for(args)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((args.address, args.port))
    except OSError as error:
        die("cannot listen on %s:%d: %s" % (args.address, args.port, error))
    listener.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("ready", flush=True)

    def serve(sock):
        try:
            Conversation(sock, args, context).run()
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    while True:
        try:
            sock, _ = listener.accept()
        except KeyboardInterrupt:
            return
        threading.Thread(target=serve, args=(sock,), daemon=True).start()


# ---------------------------------------------------------------- main

# ---------------------------------------------------------------- PostgreSQL

PG_USER = "postgres"


def pg_bin(name):
    """The newest installed server's program (Debian keeps them per version)."""
    versions = sorted((d for d in os.listdir("/usr/lib/postgresql") if d.isdigit()), key=int) \
        if os.path.isdir("/usr/lib/postgresql") else []
    if not versions:
        die("no PostgreSQL server installed (apt-get install postgresql)", 69)
    return "/usr/lib/postgresql/%s/bin/%s" % (versions[-1], name)


def as_pg_user(argv):
    # The server refuses to run as root: initdb and pg_ctl run as the postgres user.
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--"] + argv
    return argv


def cmd_postgres_start(args):
    """A throwaway cluster in D/data on 127.0.0.1:N, its socket in D, trust
    authentication for local and loopback connections, superuser 'postgres'."""
    d = os.path.abspath(args.dir)
    os.makedirs(d, exist_ok=True)
    make_traversable(d)
    if os.geteuid() == 0:
        pw = pwd.getpwnam(PG_USER)
        os.chown(d, pw.pw_uid, pw.pw_gid)
    if not port_free("127.0.0.1", args.port):
        die("port %d on 127.0.0.1 is in use" % args.port)
    data = os.path.join(d, "data")
    run_checked(as_pg_user([pg_bin("initdb"), "-D", data, "-U", PG_USER, "-A", "trust",
                            "-E", "UTF8", "--no-sync", "--no-instructions"]), cwd=d)
    # fsync off: a test cluster is thrown away, and fsync costs seconds per test run.
    options = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" % (args.port, d)
    proc = subprocess.run(as_pg_user([pg_bin("pg_ctl"), "-D", data, "-l", os.path.join(d, "postgres.log"),
                                      "-o", options, "-w", "-t", str(int(START_TIMEOUT)), "start"]),
                          cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0 or not wait_for_port("127.0.0.1", args.port, time.monotonic() + START_TIMEOUT):
        sys.stderr.write(log_tail(os.path.join(d, "postgres.log")))
        die("PostgreSQL did not start on 127.0.0.1:%d" % args.port)


def cmd_postgres_stop(args):
    d = os.path.abspath(args.dir)
    data = os.path.join(d, "data")
    if not os.path.exists(os.path.join(data, "postmaster.pid")):
        return
    subprocess.run(as_pg_user([pg_bin("pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"]),
                   cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser(prog="peers.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    certs = sub.add_parser("certs", help="make a throwaway CA and server certificates")
    certs.add_argument("dir")
    certs.add_argument("--names", required=True, help="DNS names, comma-separated")
    certs.set_defaults(func=cmd_certs)

    postfix = sub.add_parser("postfix", help="a throwaway Postfix")
    psub = postfix.add_subparsers(dest="action", required=True)
    pstart = psub.add_parser("start")
    pstart.add_argument("--dir", required=True)
    pstart.add_argument("--address", required=True)
    pstart.add_argument("--port", type=int, required=True)
    pstart.add_argument("--tls", required=True, choices=["on", "off", "expired",
                                                          "wrongname", "selfsigned",
                                                          "dane-ee", "dane-ta"])
    pstart.add_argument("--certs")
    pstart.add_argument("--hostname", required=True)
    pstart.set_defaults(func=cmd_postfix_start)
    pstop = psub.add_parser("stop")
    pstop.add_argument("--dir", required=True)
    pstop.set_defaults(func=cmd_postfix_stop)

    gateway = sub.add_parser("gateway", help="a Postfix outgoing gateway with the sl filter")
    gsub = gateway.add_subparsers(dest="action", required=True)
    gstart = gsub.add_parser("start")
    gstart.add_argument("--dir", required=True)
    gstart.add_argument("--address", required=True)
    gstart.add_argument("--port", type=int, required=True)
    gstart.add_argument("--hostname", required=True)
    gstart.add_argument("--local-domains", required=True, metavar="D1[,D2...]",
                        help="delivered to DIR/Maildir; any other recipient sends "
                             "the message through the filter")
    gstart.add_argument("--filter-service", required=True, metavar="FILE",
                        help="master.cf lines for the service `sl`, appended verbatim")
    gstart.add_argument("--main", action="append", metavar="KEY=VALUE",
                        help="add or override a main.cf setting")
    gstart.set_defaults(func=cmd_gateway_start)
    gstop = gsub.add_parser("stop")
    gstop.add_argument("--dir", required=True)
    gstop.set_defaults(func=cmd_gateway_stop)
    gwait = gsub.add_parser("wait", help="until nothing is in maildrop/incoming/active")
    gwait.add_argument("--dir", required=True)
    gwait.add_argument("--timeout", type=float, default=60.0)
    gwait.set_defaults(func=cmd_gateway_wait)
    gqueue = gsub.add_parser("queue", help="print the number of deferred and held messages, "
                            "once no delivery attempt is under way")
    gqueue.add_argument("--dir", required=True)
    gqueue.add_argument("--timeout", type=float, default=60.0)
    gqueue.set_defaults(func=cmd_gateway_queue)
    gflush = gsub.add_parser("flush", help="retry deferred mail now")
    gflush.add_argument("--dir", required=True)
    gflush.add_argument("--timeout", type=float, default=60.0)
    gflush.set_defaults(func=cmd_gateway_flush)

    submit = sub.add_parser("submit", help="send stdin by SMTP; exit 1 unless all accepted")
    submit.add_argument("--address", required=True)
    submit.add_argument("--port", type=int, required=True)
    submit.add_argument("--from", dest="sender", required=True)
    submit.add_argument("--to", action="append", required=True)
    submit.add_argument("--timeout", type=float, default=60.0)
    submit.set_defaults(func=cmd_submit)

    dns = sub.add_parser("dnsmasq", help="a dnsmasq serving test zones")
    dsub = dns.add_subparsers(dest="action", required=True)
    dstart = dsub.add_parser("start")
    dstart.add_argument("--dir", required=True)
    dstart.add_argument("--port", type=int, required=True)
    dstart.add_argument("--mx", action="append", metavar="DOMAIN,HOST,PREF")
    dstart.add_argument("--a", action="append", metavar="HOST,IP")
    dstart.add_argument("--aaaa", action="append", metavar="HOST,IP")
    dstart.add_argument("--nullmx", action="append", metavar="DOMAIN")
    dstart.add_argument("--txt", action="append", metavar="NAME,TEXT[|TEXT...]")
    dstart.add_argument("--zone", action="append", metavar="ZONE",
                        help="also answer NXDOMAIN for unknown names under ZONE")
    dstart.add_argument("--records", action="append", metavar="FILE",
                        help="one option per line, e.g. `mx on.test,mx.on.test,10`")
    dstart.set_defaults(func=cmd_dnsmasq_start)
    dstop = dsub.add_parser("stop")
    dstop.add_argument("--dir", required=True)
    dstop.set_defaults(func=cmd_dnsmasq_stop)

    sec = sub.add_parser("dnssec", help="a signed zone on NSD behind a validating Unbound")
    ssub = sec.add_subparsers(dest="action", required=True)
    sstart = ssub.add_parser("start")
    sstart.add_argument("--dir", required=True)
    sstart.add_argument("--zone", required=True, help="the zone to sign and serve, e.g. dane.test")
    sstart.add_argument("--auth-port", type=int, required=True, help="NSD's port")
    sstart.add_argument("--resolver-port", type=int, required=True, help="Unbound's port")
    sstart.add_argument("--resolver-address", default="127.0.0.1",
                        help="Unbound's address (a bench gives 127.0.0.x with port 53 for tools "
                             "that read resolv.conf)")
    sstart.add_argument("--rr", action="append", metavar="'NAME TYPE RDATA'",
                        help="a record; NAME relative to the zone unless it ends in a dot")
    sstart.add_argument("--tlsa", action="append", metavar="NAME,USAGE,SELECTOR,MTYPE,PEM|hex:DATA",
                        help="a TLSA record whose data is computed from the certificate PEM")
    sstart.add_argument("--bogus", action="append", metavar="NAME",
                        help="corrupt the RRSIGs of NAME's TLSA records after signing")
    sstart.add_argument("--forward", action="append", metavar="ZONE,PORT",
                        help="send queries for ZONE (unsigned: insecure) to 127.0.0.1:PORT")
    sstart.set_defaults(func=cmd_dnssec_start)
    sstop = ssub.add_parser("stop")
    sstop.add_argument("--dir", required=True)
    sstop.set_defaults(func=cmd_dnssec_stop)

    bad = sub.add_parser("badserver", help="a scripted misbehaving SMTP server")
    bad.add_argument("--address", required=True)
    bad.add_argument("--port", type=int, required=True)
    bad.add_argument("--mode", required=True, choices=BAD_MODES)
    bad.add_argument("--certs")
    bad.add_argument("--hostname", default="bad.test")
    bad.add_argument("--log", help="append each MAIL command received to this file")
    bad.set_defaults(func=cmd_badserver)

    pg = sub.add_parser("postgres", help="a throwaway PostgreSQL cluster on loopback")
    pgsub = pg.add_subparsers(dest="action", required=True)
    pgstart = pgsub.add_parser("start")
    pgstart.add_argument("--dir", required=True)
    pgstart.add_argument("--port", type=int, required=True)
    pgstart.set_defaults(func=cmd_postgres_start)
    pgstop = pgsub.add_parser("stop")
    pgstop.add_argument("--dir", required=True)
    pgstop.set_defaults(func=cmd_postgres_stop)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    # A test runner may start us from a thread that blocks signals; the daemons we
    # start would inherit the mask and ignore SIGTERM for good. Start clean.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    main()
