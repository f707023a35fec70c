#!/usr/bin/env python3
"""Loads pages in a real headless Chromium and reports what ran in each.

usage: xss_check.py BASE-URL PAGE-LIST RESULT.json

PAGE-LIST names one page a line; each is loaded from BASE-URL + name + ".html".
Every page defines xss(), which sets the title to "XSS" and window.xssRan (and
tells the server). After the page has loaded, every element is poked the way a
reader might and more: mouse, keyboard and focus events, load/error/toggle/
animation events dispatched to it, focus() and click() (a click that would follow
an http, https or mailto link is cancelled: following a link is no script, and
would leave loopback). Then, for each page, RESULT.json records the title,
window.xssRan, any alert, confirm or prompt that opened, the address the tab
ended on, and any error. The caller decides what is a failure; this script fails
only if the browser cannot be driven at all.
"""
import json
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import (NoAlertPresentException, TimeoutException,
                                        UnexpectedAlertPresentException, WebDriverException)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

POKE = r"""
const following = /^(https?|mailto):/i;
document.addEventListener('click', e => {
  const a = e.target && e.target.closest ? e.target.closest('a[href], area[href]') : null;
  if (a && following.test(a.href)) e.preventDefault();
}, true);
const kinds = ['mouseover', 'mouseenter', 'mousemove', 'mousedown', 'mouseup', 'mouseout', 'mouseleave',
  'click', 'dblclick', 'contextmenu', 'auxclick', 'pointerover', 'pointerdown', 'pointerup', 'wheel',
  'focus', 'focusin', 'blur', 'keydown', 'keypress', 'keyup', 'input', 'change', 'select', 'copy', 'paste',
  'load', 'error', 'toggle', 'animationstart', 'animationend', 'transitionend', 'scroll', 'submit', 'reset',
  'begin', 'beginEvent', 'start', 'finish', 'play', 'invalid', 'search', 'touchstart', 'drag', 'drop'];
for (const el of Array.from(document.querySelectorAll('*'))) {
  for (const kind of kinds) {
    try { el.dispatchEvent(new Event(kind, {bubbles: true, cancelable: true})); } catch (e) {}
  }
  try { if (el.focus) el.focus(); } catch (e) {}
  try { if (el.click) el.click(); } catch (e) {}
}
for (const kind of ['load', 'pageshow', 'resize', 'hashchange', 'message', 'focus', 'scroll']) {
  try { window.dispatchEvent(new Event(kind)); } catch (e) {}
}
"""


def drain_alerts(driver, alerts):
    """Accepts and records every open dialog."""
    for _ in range(20):
        try:
            alert = driver.switch_to.alert
            alerts.append(alert.text)
            alert.accept()
        except NoAlertPresentException:
            return
        except WebDriverException:
            return


def attempt(driver, alerts, action):
    """Runs a WebDriver command, recording dialogs that get in its way."""
    for _ in range(5):
        try:
            return action()
        except UnexpectedAlertPresentException:
            drain_alerts(driver, alerts)
    return None


def check(driver, main, url):
    result = {"alerts": [], "title": None, "xssRan": False, "url": None, "error": None}
    alerts = result["alerts"]
    try:
        attempt(driver, alerts, lambda: driver.get(url))
        time.sleep(0.15)
        drain_alerts(driver, alerts)
        attempt(driver, alerts, lambda: driver.execute_script(POKE))
        time.sleep(0.25)
        drain_alerts(driver, alerts)
        result["title"] = attempt(driver, alerts, lambda: driver.title)
        result["xssRan"] = attempt(driver, alerts, lambda: driver.execute_script("return window.xssRan === true")) is True
        result["url"] = attempt(driver, alerts, lambda: driver.current_url)
    except TimeoutException:
        result["error"] = "timeout"
    except WebDriverException as e:
        result["error"] = (e.msg or str(e) or type(e).__name__).splitlines()[0]
    # A popup the page opened: record dialogs in it, close it.
    for handle in list(driver.window_handles):
        if handle != main:
            try:
                driver.switch_to.window(handle)
                drain_alerts(driver, alerts)
                driver.close()
            except WebDriverException:
                pass
    driver.switch_to.window(main)
    return result


def main():
    base, page_list, result_file = sys.argv[1:4]
    with open(page_list, encoding="utf-8") as f:
        pages = [line.strip() for line in f if line.strip()]
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps",
                "--disable-domain-reliability", "--disable-client-side-phishing-detection",
                "--no-pings", "--metrics-recording-only", "--autoplay-policy=no-user-gesture-required",
                # Only loopback is reachable: no name is ever looked up elsewhere.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    options.set_capability("unhandledPromptBehavior", "ignore")
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    results = {}
    try:
        driver.set_page_load_timeout(10)
        driver.set_script_timeout(10)
        main_window = driver.current_window_handle
        for page in pages:
            results[page] = check(driver, main_window, base + page + ".html")
    finally:
        driver.quit()
    with open(result_file, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
