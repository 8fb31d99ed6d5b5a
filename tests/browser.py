"""The demo page driven in a real headless browser: Debian's Chromium through its ChromeDriver.

Missing browser or driver fails loudly (CI installs both: .ci/run); nothing is downloaded.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# No traffic beyond loopback: the page is local, and Chromium's own background calls are off.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=900,1100",
)


def chromium() -> webdriver.Chrome:
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).exists():
            raise RuntimeError(
                f"{binary} is missing: install Debian's chromium and chromium-driver (apt-get install chromium "
                "chromium-driver)"
            )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='demo-browser-')}")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def ask_demo(base_url: str, image: Path, question: str, screenshot: Path, key: str = "", timeout: float = 120) -> dict:
    """Load the page, give it the image, the question (and key), ask; the three answers as shown."""
    browser = chromium()
    try:
        browser.get(base_url + "/")
        if key:
            browser.find_element(By.ID, "key").send_keys(key)
            browser.execute_script("document.getElementById('key').dispatchEvent(new Event('change'))")
        wait = WebDriverWait(browser, timeout)
        wait.until(lambda b: Select(b.find_element(By.ID, "reasoner")).options)
        browser.find_element(By.ID, "image").send_keys(str(image.resolve()))
        browser.find_element(By.ID, "question").send_keys(question)
        browser.find_element(By.ID, "submit").click()
        wait.until(lambda b: b.find_element(By.ID, "status").get_attribute("textContent") not in ("", "asking..."))
        status = browser.find_element(By.ID, "status").get_attribute("textContent")
        shown = {
            name: browser.find_element(By.ID, name).get_attribute("textContent")
            for name in ("caption", "tentative", "final")
        }
        shown["status"] = status
        picker = Select(browser.find_element(By.ID, "reasoner"))
        shown["reasoner"] = picker.first_selected_option.text
        shown["reasoners"] = [option.text for option in picker.options]
        browser.save_screenshot(str(screenshot))
        return shown
    finally:
        browser.quit()
        shutil.rmtree(browser.capabilities.get("chrome", {}).get("userDataDir", ""), ignore_errors=True)
