#!/usr/bin/env python3
"""Login mode, the message center and a password reset in a real headless Chromium.

usage: accounts.py SPEC.json

SPEC names the portal (base URL), Erin's notice link (a login recipient without an
account), the passwords, what her message holds (text, an attachment's name and
SHA-256), the smtp-sink dump the reset mail lands in, Alice's (the sender's)
password, and where screenshots go. Walks, as the people would:

  Erin: notice link -> "choose a password" -> her message (text, HTML part in a
  sandboxed frame with its cid: image, attachment downloaded byte for byte) ->
  sign out -> sign in -> message center -> forgot password -> link from the mail
  -> new password -> sign in -> the old message is sealed for the old password.
  Alice: sign in -> what she sent, who opened it -> withdraw it.

Phone-width screenshots of each main page go to SPEC["shots"]. Exits non-zero with
a reason on any failure.
"""
import hashlib
import json
import os
import re
import sys
import tempfile
import time

from selenium.common.exceptions import NoAlertPresentException
from browser import chromium, fill, shows
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


def fail(why, driver=None):
    page = driver.page_source[:3000] if driver else ""
    sys.exit(f"{why}\n--- page ---\n{page}")


class Walk:
    def __init__(self, spec):
        self.spec = spec
        self.shots = spec["shots"]
        os.makedirs(self.shots, exist_ok=True)
        # A fresh download directory: an earlier run's file would shadow this one's.
        self.downloads = tempfile.mkdtemp(prefix="sl-portal-downloads-")
        self.driver = chromium(self.downloads)
        self.wait = WebDriverWait(self.driver, 20)

    def shot(self, name):
        d = self.driver
        width = d.execute_script("return document.documentElement.scrollWidth")
        viewport = d.execute_script("return window.innerWidth")
        if width > viewport:
            fail(f"{name}: the page is wider ({width}px) than the phone screen ({viewport}px)", d)
        path = os.path.join(self.shots, name + ".png")
        if not d.save_screenshot(path):
            fail("no screenshot written: " + path)

    def no_script_ran(self, where):
        d = self.driver
        try:
            alert = d.switch_to.alert
            fail(f"{where}: an alert is open: {alert.text}", d)
        except NoAlertPresentException:
            pass
        if d.title == "XSS":
            fail(f"{where}: a script in the message ran", d)

    def fill(self, field_id, value):
        fill(self.driver, field_id, value)

    def submit(self):
        self.driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()

    def expect_text(self, text, where):
        if not shows(self.driver, text):
            fail(f"{where}: {text!r} is not on the page", self.driver)

    def sign_in(self, address, password):
        self.driver.get(self.spec["portal"] + "/account")
        self.fill("address", address)
        self.fill("password", password)
        self.submit()
        self.expect_text("Signed in as " + address, "message center")

    def sign_out(self):
        self.driver.find_element(By.XPATH, "//button[text()='Sign out']").click()
        self.expect_text("You are signed out", "signed out")

    def erin(self):
        s, d = self.spec, self.driver
        d.get(s["erin_link"])
        self.fill("password", s["erin_password"])
        self.fill("password2", s["erin_password"])
        self.shot("portal-set-password")
        self.submit()
        text = self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "pre.text"))).text
        if s["text"] not in text:
            fail("Erin's message text is not shown", d)
        if "#" in d.current_url:
            fail("the fragment is still in the address bar: " + d.current_url)
        frame = d.find_element(By.CSS_SELECTOR, "iframe.html")
        if frame.get_attribute("sandbox") != "allow-popups allow-popups-to-escape-sandbox":
            fail("the HTML frame is not sandboxed as it should be: " + str(frame.get_attribute("sandbox")))
        time.sleep(1)
        self.no_script_ran("message page")
        self.shot("portal-message")
        d.switch_to.frame(frame)
        body = d.find_element(By.TAG_NAME, "body").text
        if s["html_text"] not in body:
            fail("the HTML part's text is not in its frame: " + body[:500], d)
        loaded = d.execute_script(
            "var i = document.querySelector('img'); return i ? (i.complete && i.naturalWidth > 0) : null")
        if loaded is not True:
            fail(f"the cid: image did not load in the frame ({loaded})", d)
        scripts = d.execute_script("return document.querySelectorAll('script, [onerror], [onload]').length")
        if scripts:
            fail(f"{scripts} script elements or handlers reached the frame", d)
        d.switch_to.default_content()
        # The attachment, downloaded by the browser, byte for byte.
        d.find_element(By.LINK_TEXT, s["attachment_name"]).click()
        target = os.path.join(self.downloads, s["attachment_name"])
        for _ in range(100):
            if os.path.exists(target) and not os.path.exists(target + ".crdownload"):
                break
            time.sleep(0.1)
        else:
            fail("the attachment was not downloaded: " + str(os.listdir(self.downloads)))
        with open(target, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest != s["attachment_sha256"]:
            fail(f"the downloaded attachment differs: {digest} != {s['attachment_sha256']}")
        self.sign_out()
        # After sign-out the message page is closed.
        d.back()
        d.refresh()
        self.expect_text("Your session has ended", "after sign-out")

        # The message center with the account.
        self.sign_in(s["erin"], s["erin_password"])
        self.shot("portal-message-center")
        links = d.find_elements(By.CSS_SELECTOR, "ul.messages a")
        if len(links) != 1:
            fail(f"the message center lists {len(links)} readable messages, not 1", d)
        links[0].click()
        self.expect_text(s["text"], "a message opened from the center")
        self.sign_out()

        # Forgot the password: a link by mail, a new password, the old message sealed.
        d.get(s["portal"] + "/account/reset")
        self.fill("address", s["erin"])
        self.shot("portal-reset")
        self.submit()
        self.expect_text("is on its way", "reset requested")
        link = None
        for _ in range(200):
            if os.path.exists(s["sink_dump"]):
                with open(s["sink_dump"], "rb") as f:
                    m = re.search(rb"https?://\S+/account/password#[A-Za-z0-9_-]{43}", f.read())
                if m:
                    link = m.group(0).decode().replace(s["public"], s["portal"])
                    break
            time.sleep(0.1)
        if not link:
            fail("no reset link reached the mailbox (smtp-sink)")
        d.get(link)
        if "#" in d.current_url:
            fail("the reset token stayed in the address bar")
        self.fill("password", s["new_password"])
        self.fill("password2", s["new_password"])
        self.shot("portal-new-password")
        self.submit()
        self.expect_text("Your new password is set", "password set")
        d.get("about:blank")      # else only the fragment changes and nothing loads
        d.get(link)
        self.fill("password", "another new password")
        self.fill("password2", "another new password")
        self.submit()
        self.expect_text("not valid", "the reset link used twice")
        self.sign_in(s["erin"], s["new_password"])
        self.expect_text("sealed for your earlier password", "the center after a reset")
        self.sign_out()

    def alice(self):
        s, d = self.spec, self.driver
        self.sign_in(s["alice"], s["alice_password"])
        self.expect_text("Sent by you", "Alice's center")
        self.expect_text(s["erin"] + ": opened", "Alice sees Erin's open")
        self.shot("portal-sent")
        d.find_element(By.XPATH, "//button[text()='Withdraw']").click()
        self.expect_text("withdrawn", "after withdrawing")
        self.sign_out()

    def run(self):
        try:
            self.erin()
            self.alice()
            violations = [e["message"] for e in self.driver.get_log("browser")
                          if "Content Security Policy" in e["message"] and "/read/" not in e["message"]]
            if violations:
                fail("CSP violations on our pages: " + "; ".join(violations))
        finally:
            self.driver.quit()


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        Walk(json.load(f)).run()
    print("ok")
