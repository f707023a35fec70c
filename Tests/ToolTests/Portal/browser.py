"""The headless Chromium every portal test drives: Debian's chromium and
chromium-driver through Selenium, phone-width (390x844), with the console log
kept so tests can read what the pages reported."""
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service


def chromium(downloads=None):
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--window-size=390,844", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    if downloads:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
    return driver


def fill(driver, field_id, value, timeout=20):
    """Types into a field, again if a navigation replaced the page under it (the
    old page's field goes stale while the click's navigation lands)."""
    import time
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    for attempt in range(10):
        try:
            field = WebDriverWait(driver, timeout).until(EC.presence_of_element_located((By.ID, field_id)))
            field.clear()
            field.send_keys(value)
            return
        except WebDriverException:
            if attempt == 9:
                raise
            time.sleep(0.3)


def shows(driver, text, timeout=15):
    """Whether the page's main element comes to show `text` within `timeout`:
    after a click the old page may still be showing, or be replaced mid-read."""
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(d):
        try:
            return text in d.find_element(By.TAG_NAME, "main").text
        except WebDriverException:
            return False
    try:
        WebDriverWait(driver, timeout).until(shown)
        return True
    except TimeoutException:
        return False
