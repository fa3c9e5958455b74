"""The Streamlit web demo in a real headless Chromium (Debian's chromium + chromium-driver).

Not skipped when the browser is missing: as root with apt-get (CI) the test installs it, and
otherwise it fails saying what to install. The MiniMind-V image upload is checked without a
browser, with Streamlit's own in-process app runner (`streamlit.testing.v1.AppTest`).
"""

import os
import shutil
import subprocess
import tempfile

import pytest
from serving_helpers import (
    REPLY,
    free_port,
    one_thread,
    png_bytes,
    scripted_model_dir,
    start_script,
    stop_process,
    vlm_model_dir,
    wait_http,
)

CURSOR = "▌"
BROWSER_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
]


def _find_browser() -> tuple[str | None, str | None]:
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None
    )
    return chromium, driver


def ensure_browser() -> tuple[str, str]:
    chromium, driver = _find_browser()
    if chromium and driver:
        return chromium, driver
    if os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
        try:
            subprocess.run(
                "apt-get update && apt-get install -y chromium chromium-driver",
                shell=True,
                check=True,
                capture_output=True,
                timeout=900,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output = getattr(exc, "stderr", b"") or b""
            pytest.fail(
                f"headless Chromium is missing and `apt-get install chromium chromium-driver` failed:\n"
                f"{output.decode(errors='replace')[-2000:]}"
            )
        chromium, driver = _find_browser()
    if not (chromium and driver):
        pytest.fail(
            "the web demo test needs Debian's `chromium` and `chromium-driver` packages "
            "(apt-get install -y chromium chromium-driver); this test is not skipped"
        )
    return chromium, driver


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("the web demo test needs selenium: pip install -e '.[dev]'")
    chromium, driver_path = ensure_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for arg in BROWSER_ARGS + [f"--user-data-dir={profile}"]:
        options.add_argument(arg)
    # An explicit driver path: Selenium Manager (which would try to download one) never runs.
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    model_dir = scripted_model_dir(tmp_path_factory.mktemp("models"))
    port = free_port()
    proc = start_script("web_demo.py", str(model_dir), "--port", str(port), "--temperature", "0")
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", proc, timeout=90)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def test_web_demo_streams_an_answer_in_chromium(browser, demo, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    def messages():
        return [e.text for e in browser.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessageContent']")]

    def send(text):
        box = browser.find_element(By.CSS_SELECTOR, "[data-testid='stChatInputTextArea']")
        box.send_keys(text + Keys.ENTER)

    def wait_answer(count):
        """Poll the page while the answer streams in; return every distinct text seen."""
        seen = []

        def done(_):
            texts = messages()
            if len(texts) >= count:
                if not seen or seen[-1] != texts[-1]:
                    seen.append(texts[-1])
                return CURSOR not in texts[-1] and texts[-1].strip()
            return False

        WebDriverWait(browser, 90, poll_frequency=0.05).until(done)
        return seen

    browser.get(demo)
    # The first script run loads the model: wait for the chat input to appear.
    WebDriverWait(browser, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stChatInputTextArea']"))
    # a text-only model: the image upload widget is shown disabled, with the reason
    dropzone = browser.find_element(By.CSS_SELECTOR, "[data-testid='stFileUploaderDropzone']")
    assert dropzone.get_attribute("aria-disabled") == "true"
    assert not dropzone.find_element(By.TAG_NAME, "button").is_enabled()
    assert "does not accept images" in browser.find_element(By.TAG_NAME, "body").text

    send("hi")
    seen = wait_answer(2)
    assert messages() == ["hi", REPLY]  # the model's own (scripted) answer, cursor gone
    assert all(REPLY.startswith(s.replace(CURSOR, "").strip()) for s in seen)  # partial texts are prefixes

    send("who are you?")
    wait_answer(4)
    assert messages() == ["hi", REPLY, "who are you?", REPLY]  # history stays on the page

    shot = tmp_path / "web_demo.png"
    assert browser.save_screenshot(str(shot))
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size[0] >= 800 and image.size[1] >= 600
        assert len(set(image.convert("L").resize((64, 64)).getdata())) > 4  # something was drawn
    print(f"screenshot: {shot}")


def _demo_page(model_dir):  # run by AppTest as a script of its own: imports inside
    from minimind_hf.cli.web_demo import build_parser, run_page

    run_page(build_parser().parse_args([model_dir, "--temperature", "0"]))


def test_image_upload_for_a_minimind_v_folder(tmp_path_factory):
    """The upload is enabled for MiniMind-V; an uploaded image goes with the next message only."""
    from streamlit.testing.v1 import AppTest

    model_dir = vlm_model_dir(tmp_path_factory.mktemp("vlm"), scripted=True)
    app = AppTest.from_function(_demo_page, args=(str(model_dir),), default_timeout=90)
    with one_thread():
        app.run()
        assert not app.exception
        [uploader] = app.sidebar.file_uploader
        assert not uploader.proto.disabled and ".png" in uploader.allowed_type
        uploader.upload("broken.png", b"not a picture", "image/png")
        app.chat_input[0].set_value("What is this?").run()
        assert "broken.png is not a readable image" in app.error[0].value and not app.chat_message
        app.sidebar.file_uploader[0].set_value(("red.png", png_bytes("red"), "image/png"))
        app.chat_input[0].set_value("What is this?").run()
        assert not app.exception and not app.error
        user, assistant = app.chat_message
        # the picture is shown (AppTest names the element "imgs" before streamlit 1.58, "image" after)
        assert [e.type for e in user.children.values()] in (["image", "markdown"], ["imgs", "markdown"])
        assert assistant.markdown[0].value == REPLY
        [uploader] = app.sidebar.file_uploader  # emptied once sent
        assert not uploader.value
        app.chat_input[0].set_value("And now?").run()
    assert [m.markdown[0].value for m in app.chat_message] == ["What is this?", REPLY, "And now?", REPLY]
    messages = app.session_state["conversation"].messages
    # the image stays with the first message (re-encoded in every prompt), the second has none
    assert [p["type"] for p in messages[0]["content"]] == ["image_url", "text"] and messages[2]["content"] == "And now?"
