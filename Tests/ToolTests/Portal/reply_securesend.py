#!/usr/bin/env python3
"""A secure reply and a SecureSend message in a real headless Chromium.

usage: reply_securesend.py SPEC.json

Carol opens her escrow link, answers, replies with an attachment ("Reply sent"),
and a second reply is refused (portal_max_replies = 1). A visitor writes to a
staff address on the public form with an attachment, gets "Check your mail",
finds the confirmation link in the mailbox the real Postfix delivered it to
(SPEC["visitor_maildir"]), follows it and sees "Delivered". A second visitor
message is written and never confirmed. Phone-width screenshots go to
SPEC["shots"]. Exits non-zero with a reason on any failure.
"""
import json
import os
import re
import sys
import time

from browser import chromium, shows
from browser import fill as fill_field
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


def main():
    with open(sys.argv[1]) as f:
        s = json.load(f)
    os.makedirs(s["shots"], exist_ok=True)
    d = chromium()
    wait = WebDriverWait(d, 20)

    def fail(why):
        sys.exit(f"{why}\n--- page ---\n{d.page_source[:3000]}")

    def shown(text, where):
        if not shows(d, text):
            fail(f"{where}: {text!r} is not on the page")

    def shot(name):
        if d.execute_script("return document.documentElement.scrollWidth") > d.execute_script("return window.innerWidth"):
            fail(f"{name}: wider than the phone screen")
        if not d.save_screenshot(os.path.join(s["shots"], name + ".png")):
            fail("no screenshot " + name)

    def fill(field, value):
        fill_field(d, field, value)

    try:
        # Carol: open, answer, reply with an attachment.
        d.get(s["carol_link"])
        fill("answer", s["answer"])
        d.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        wait.until(EC.presence_of_element_located((By.ID, "text")))
        message_page = d.current_url
        fill("text", s["reply_text"])
        d.find_element(By.ID, "files").send_keys(s["reply_file"])
        shot("portal-reply")
        d.find_element(By.XPATH, "//button[text()='Send the reply']").click()
        shown("Your reply to", "reply sent")
        # The limit: a second reply is refused and says why.
        d.get(message_page)
        fill("text", "a second reply")
        d.find_element(By.XPATH, "//button[text()='Send the reply']").click()
        shown("the most this portal allows", "second reply")

        # SecureSend: the form, the confirmation mail, the link.
        d.get(s["portal"] + "/send")
        fill("from", s["visitor"])
        fill("to", s["staff"])
        fill("subject", s["subject"])
        fill("text", s["send_text"])
        d.find_element(By.ID, "files").send_keys(s["send_file"])
        shot("portal-securesend")
        d.find_element(By.XPATH, "//button[text()='Send securely']").click()
        shown("We have mailed a link to " + s["visitor"], "securesend held")
        link = None
        for _ in range(300):
            for sub in ("new", "cur"):
                folder = os.path.join(s["visitor_maildir"], sub)
                for name in os.listdir(folder) if os.path.isdir(folder) else []:
                    with open(os.path.join(folder, name), "rb") as f:
                        text = f.read().decode("utf-8", "replace")
                    if s["staff"] in text:
                        m = re.search(r"https?://\S+/send/verify#[A-Za-z0-9_-]{43}", text)
                        if m:
                            link = m.group(0).replace(s["public"], s["portal"])
            if link:
                break
            time.sleep(0.1)
        if not link:
            fail("no confirmation link reached the visitor's mailbox")
        d.get(link)
        shown("Your message to " + s["staff"] + " is on its way", "securesend delivered")
        shot("portal-securesend-delivered")
        d.get("about:blank")
        d.get(link)
        shown("not valid", "the link used twice")

        # A message never confirmed.
        d.get(s["portal"] + "/send")
        fill("from", s["visitor"])
        fill("to", s["staff"])
        fill("subject", "never confirmed")
        fill("text", s["unconfirmed_text"])
        d.find_element(By.XPATH, "//button[text()='Send securely']").click()
        shown("We have mailed a link", "second securesend held")
        print("ok")
    finally:
        d.quit()


if __name__ == "__main__":
    main()
