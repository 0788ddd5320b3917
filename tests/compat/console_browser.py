"""What console.sh's two browser sessions share: headless Chromium started the same way, a wait for the next
page, and screenshots that never fail a check."""
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import WebDriverException


def start_chromium():
    """Headless Chromium from Debian, driven by its chromedriver; a page that takes over 30 s to load fails."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    return driver


def replaced(old):
    """A wait condition: the page `old` (an element of it) was part of has been replaced. Chromium reports such an
    element as stale, or, while the next page loads, as a node that "does not belong to the document": both mean
    the old page is gone (selenium's staleness_of knows only the first, which made this script flaky)."""
    def is_gone(_driver):
        try:
            old.is_enabled()
            return False
        except WebDriverException:
            return True
    return is_gone


def screenshot(driver, path):
    """Saves the page as `path`: a record for people, not a check. Chromium under load can time a screenshot out
    while it settles the page just loaded ("aborted by navigation"); one more try a moment later, then a note."""
    import sys
    import time
    for attempt in range(2):
        try:
            driver.save_screenshot(path)
            return
        except WebDriverException as error:
            if attempt == 1:
                print(f"console.sh: no screenshot {path}: {error.msg}", file=sys.stderr)
            time.sleep(1)
