#!/usr/bin/env python3
"""Picks up an escrowed message in a real headless Chromium, as a recipient does.

usage: pickup.py URL#SECRET QUESTION ANSWER EXPECTED-TEXT SCREENSHOT.png

Opens the link with its fragment (our script moves the secret into a POST), answers
the question, checks the message text is shown, the fragment is gone from the
address bar and no Content-Security-Policy violation was logged, and saves a
phone-width screenshot. Exits non-zero with a reason on any failure.
"""
import sys

from browser import chromium
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


def main():
    url, question, answer, expected, screenshot = sys.argv[1:6]
    driver = chromium()
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 20)
        field = wait.until(EC.presence_of_element_located((By.ID, "answer")))
        page = driver.page_source
        if question not in page:
            sys.exit("the question page does not show the question: " + page[:2000])
        if "#" in driver.current_url:
            sys.exit("the fragment is still in the address bar: " + driver.current_url)
        if not driver.save_screenshot(screenshot.replace(".png", "-question.png")):
            sys.exit("no screenshot of the question page written")
        field.send_keys(answer)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        text = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "pre.text"))).text
        if expected not in text:
            sys.exit("the message text is not shown: " + driver.page_source[:2000])
        width = driver.execute_script("return document.documentElement.scrollWidth")
        viewport = driver.execute_script("return window.innerWidth")
        if width > viewport:
            sys.exit(f"the page is wider ({width}px) than the phone screen ({viewport}px)")
        violations = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
        if violations:
            sys.exit("CSP violations: " + "; ".join(violations))
        if not driver.save_screenshot(screenshot):
            sys.exit("no screenshot written")
        print(screenshot)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
