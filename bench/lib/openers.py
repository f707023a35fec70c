#!/usr/bin/env python3
"""bench/lib/openers.py — concurrent escrow openers for the benchmarks (bench/portal,
bench/escrow): people opening their notices' links on sl-portal, as a browser does.

    openers.py LINKS OPENERS [--answer A] [--portal http://HOST:PORT]...

LINKS is a file of notice links, one a line ("http://…/sl-escrow/ID/N#SECRET").
OPENERS clients at once (threads) take links from a shared queue until every link
was tried once. Each fetches the link's page (for the CSRF cookie), posts the secret
with the answer, follows the 303 to the message with the session cookie, and must
get the message: HTTP 200 and a page holding "bench-marker-<number>" (the marker
the benchmarks put in each message's text). A 503 (every derivation slot busy) is
retried after its Retry-After, as a person would, up to 30 times.

With --portal (repeatable), the links' scheme, host and port are replaced: link i
goes to the i-th portal modulo their number, so the opens are split evenly over
several sl-portal processes serving one store. The path (escrow_url's) stays.

Prints one line: OPENED FAILED SECONDS RETRIED_503 DISTINCT_MARKERS, and the first
few failures on standard error. The portal's cookies are Secure (a proxy terminates
TLS in front of it): talking to it directly over loopback, they are carried by hand.
"""
import argparse
import queue
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request


class Stay(urllib.request.HTTPRedirectHandler):
    # The 303 after a right answer carries the session cookie: follow it by hand.
    def redirect_request(self, *args):
        return None


def main():
    # Interrupted (^C), stop at once, as the shell script around expects of a command.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    parser = argparse.ArgumentParser()
    parser.add_argument("links")
    parser.add_argument("openers", type=int)
    parser.add_argument("--answer", default="Elm Street")
    parser.add_argument("--portal", action="append", default=[])
    args = parser.parse_args()

    stay = urllib.request.build_opener(Stay)
    links = [l.strip() for l in open(args.links) if l.strip()]
    work = queue.Queue()
    for i, link in enumerate(links):
        if args.portal:
            base = urllib.parse.urlsplit(args.portal[i % len(args.portal)])
            parts = urllib.parse.urlsplit(link)
            link = urllib.parse.urlunsplit((base.scheme, base.netloc, parts.path, parts.query, parts.fragment))
        work.put(link)
    ok, bad, busy = [0], [0], [0]
    markers, failures = set(), []
    lock = threading.Lock()

    def open_one(link):
        url, secret = link.split("#", 1)
        first = urllib.request.urlopen(url, timeout=600)
        first.read()
        cookie = next(h.split(";", 1)[0] for h in first.headers.get_all("Set-Cookie") or [] if h.startswith("sl_csrf="))
        token = cookie.split("=", 1)[1]
        body = urllib.parse.urlencode({"csrf": token, "secret": secret, "answer": args.answer}).encode()
        request = urllib.request.Request(url, data=body, headers={"Cookie": cookie})
        # More openers than derivation slots: the portal answers 503 with
        # Retry-After to those that waited too long, and they come back.
        for _ in range(30):
            try:
                stay.open(request, timeout=600).read()
                raise RuntimeError("no redirect to the message")
            except urllib.error.HTTPError as e:
                if e.code == 303:
                    session = next(h.split(";", 1)[0] for h in e.headers.get_all("Set-Cookie") if h.startswith("sl_session="))
                    target = urllib.parse.urljoin(url, e.headers["Location"])
                    response = urllib.request.urlopen(
                        urllib.request.Request(target, headers={"Cookie": cookie + "; " + session}), timeout=600)
                    if response.status != 200:
                        raise RuntimeError(f"the message page answered {response.status}")
                    page = response.read().decode("utf-8", "replace")
                    found = re.findall(r"bench-marker-(\d+)", page)
                    if not found:
                        raise RuntimeError("the message page does not hold the message's text")
                    return found[0]
                if e.code != 503:
                    raise
                with lock:
                    busy[0] += 1
                time.sleep(float(e.headers.get("Retry-After", "1")))
        raise RuntimeError("still 503 after 30 tries")

    def run():
        while True:
            try:
                link = work.get_nowait()
            except queue.Empty:
                return
            try:
                marker, error = open_one(link), None
            except Exception as e:      # noqa: BLE001 — every failure counts, and is shown
                marker, error = None, e
            with lock:
                if marker is None:
                    bad[0] += 1
                    failures.append(f"{link.split('#', 1)[0]}: {error!r}")
                else:
                    ok[0] += 1
                    markers.add(marker)

    start = time.monotonic()
    threads = [threading.Thread(target=run, daemon=True) for _ in range(args.openers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    for f in failures[:3]:
        print(f"openers: {f}", file=sys.stderr)
    if len(failures) > 3:
        print(f"openers: … and {len(failures) - 3} more failures", file=sys.stderr)
    print(f"{ok[0]} {bad[0]} {elapsed:.3f} {busy[0]} {len(markers)}")


if __name__ == "__main__":
    main()
