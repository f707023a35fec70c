#!/usr/bin/env python3
"""The XSS corpus through the portal, in a real headless Chromium.

usage: xss_portal.py URL#SECRET ANSWER CANARY-PORT VECTORS SCREENSHOT.png

The message behind the link has every vector of Tests/SLHTMLTests/Fixtures/
xss-vectors.txt in an HTML part of its own (VECTORS parts), each remote reference pointing at a canary
HTTP listener on CANARY-PORT that this script runs. Opens the link, answers,
waits for the HTML frame, and fails if: an alert opened; any page's title became
"XSS"; the browser console shows a script that ran (xss is not defined), was
blocked by the frame's sandbox, or a load the Content-Security-Policy refused
(each means something got past the sanitizer, even if a later layer stopped it);
or the canary received any request.
"""
import http.server
import sys
import threading
import time

from selenium.common.exceptions import NoAlertPresentException
from browser import chromium
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

hits = []


class Canary(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args):
        pass


def main():
    url, answer, port, count, screenshot = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Canary)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    driver = chromium()
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 20)
        wait.until(EC.presence_of_element_located((By.ID, "answer"))).send_keys(answer)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "iframe.html")))
        frames = driver.find_elements(By.CSS_SELECTOR, "iframe.html")
        if len(frames) != count:
            sys.exit(f"{len(frames)} HTML frames for {count} vectors")
        # Every frame loaded (scrolled into view: lazy frames load late).
        for i, frame in enumerate(frames):
            driver.execute_script("arguments[0].scrollIntoView()", frame)
            driver.switch_to.frame(frame)
            WebDriverWait(driver, 20).until(lambda d: f"vector-{i}" in d.find_element(By.TAG_NAME, "body").text)
            driver.switch_to.default_content()
        time.sleep(2)
        try:
            sys.exit("an alert opened: " + driver.switch_to.alert.text)
        except NoAlertPresentException:
            pass
        if driver.title == "XSS":
            sys.exit("a vector changed the page title")
        driver.execute_script("window.scrollTo(0, 0)")
        if not driver.save_screenshot(screenshot):
            sys.exit("no screenshot written: " + screenshot)
        bad = [e["message"] for e in driver.get_log("browser")
               if any(k in e["message"] for k in ("xss", "Blocked script execution", "Content Security Policy", "Refused to"))]
        if bad:
            sys.exit("something got past the sanitizer:\n" + "\n".join(bad[:20]))
        time.sleep(1)
        if hits:
            sys.exit("the canary was reached: " + ", ".join(hits[:20]))
        # Control: the canary does see a request the browser makes, so silence
        # above means nothing was asked for.
        driver.get(f"http://127.0.0.1:{port}/control")
        time.sleep(0.5)
        if hits != ["/control"]:
            sys.exit(f"the canary does not see the browser's requests: {hits}")
        print(f"ok: {count} vectors, no script ran and nothing loaded")
    finally:
        driver.quit()
        server.shutdown()


if __name__ == "__main__":
    main()
