"""The Space's app (app.py) in a real browser: headless Chromium driven through Selenium (`make test-browser`).

The app runs as a person starts it (`python app.py --port P`, a subprocess on a free port of 127.0.0.1) with the
committed TextShapes model, and with the TextCam model of `$MMVG_TEXTCAM_MODEL` (or `checkpoints/mmvg-textcam-64x8`)
where one is there. Checked through the page, as a person sees it:

- a frame uploaded, a caption typed, "Complete the clip": the page shows a GIF of 8 frames whose first frame is the
  uploaded one and whose shape moves as the caption says, an mp4 of 8 frames to download, and the summary;
  `outputs/app-screenshot.png` is that page;
- inputs the app cannot complete from (infilling with one frame, no caption, a file that is not an image) are
  messages in the page, and no clip appears;
- the domain switch changes the caption examples, and on TextCam a held-out photo completes (when the model is here;
  `outputs/app-screenshot-textcam.png`).

Needs the `app` extra (gradio, selenium) and Debian's `chromium` and `chromium-driver`. Without them the tests are
skipped, unless MMVG_BROWSER_TEST=required (as `make test-browser` sets), where they fail.
"""

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transformers_mmvg.data import textcam, textshapes
from transformers_mmvg.video_io import read_video

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the `app` extra is not installed
    webdriver = None

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPOSITORY = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPOSITORY / "outputs"
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1800")
START_TIMEOUT_S = 240  # importing torch, transformers and gradio on a busy 2-core machine
COMPLETION_TIMEOUT_S = 180
NUM_FRAMES = 8  # both models complete clips of 8 frames at 8 fps
GIF_SCALE = 4  # app.GIF_SCALE: the clip is shown 4x the model's 64 px
# a clip to complete: its first frame is uploaded, its caption typed
CLIP = textshapes.ClipParams("circle", "green", ("up", "right"), x0=12, y0=44)


def require(condition: bool, reason: str) -> None:
    """Skip when something the test needs is missing, or fail when MMVG_BROWSER_TEST=required."""
    if not condition:
        if os.environ.get("MMVG_BROWSER_TEST") == "required":
            pytest.fail(f"{reason} (MMVG_BROWSER_TEST=required)")
        pytest.skip(reason)


def textcam_model() -> Path:
    return Path(os.environ.get("MMVG_TEXTCAM_MODEL") or REPOSITORY / "checkpoints" / "mmvg-textcam-64x8")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """`python app.py` serving on a free port; its URL. The app's output goes to a log shown when it fails."""
    require(find_spec("gradio") is not None, "gradio is not installed (the `app` extra: make test-browser)")
    log_path = tmp_path_factory.mktemp("app") / "app.log"
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(REPOSITORY / "app.py"), "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPOSITORY, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not serve {url} in {START_TIMEOUT_S} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through its own chromedriver."""
    require(webdriver is not None, "selenium is not installed (the `app` extra: make test-browser)")
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    require(chromium is not None and chromedriver is not None,
            "chromium and chromedriver are not on PATH (make browser-deps)")  # fmt: skip
    options = Options()
    options.binary_location = chromium
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield driver
    driver.quit()


# -- what a person does and sees ------------------------------------------------------------------------------------


def open_page(driver, url: str) -> None:
    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "run") and d.find_elements(By.ID, "caption"))


def upload(driver, box: str, path: Path) -> None:
    """Choose `path` in the upload box `box` ("first-frame" / "last-frame") and wait for its preview."""
    driver.find_element(By.CSS_SELECTOR, f"#{box} input[type=file]").send_keys(str(path))
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#{box} img"))


def choose(driver, radio: str, label: str) -> None:
    """Click the option `label` of the radio group `radio` ("domain" / "task")."""
    options = [option for option in driver.find_elements(By.CSS_SELECTOR, f"#{radio} label") if option.text == label]
    assert len(options) == 1, f"no single option {label!r} in #{radio}"
    options[0].click()


def type_caption(driver, text: str) -> None:
    box = driver.find_element(By.CSS_SELECTOR, "#caption textarea")
    box.clear()
    box.send_keys(text)


def page_text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def wait_for_clip(driver) -> str:
    """Click "Complete the clip" and wait for the clip; returns its URL (a page error fails with its text)."""
    driver.find_element(By.ID, "run").click()

    def clip_or_error(d):
        if d.find_elements(By.CSS_SELECTOR, ".toast-body"):
            return "error"
        images = d.find_elements(By.CSS_SELECTOR, "#clip img")
        return images and images[0].get_attribute("src") and "frames" in d.find_element(By.ID, "summary").text

    WebDriverWait(driver, COMPLETION_TIMEOUT_S).until(clip_or_error)
    toasts = [toast.text for toast in driver.find_elements(By.CSS_SELECTOR, ".toast-body")]
    assert not toasts, f"the page shows an error instead of a clip: {toasts}"
    return driver.find_element(By.CSS_SELECTOR, "#clip img").get_attribute("src")


def wait_for_message(driver, expected: str) -> str:
    """Click "Complete the clip" and wait for a message in the page holding `expected`; returns the page's text."""
    driver.find_element(By.ID, "run").click()
    try:
        WebDriverWait(driver, 60).until(
            lambda d: any(expected in toast.text for toast in d.find_elements(By.CSS_SELECTOR, ".toast-body"))
        )
    except TimeoutException:
        pytest.fail(f"no message {expected!r} in the page; it shows:\n{page_text(driver)}")
    return page_text(driver)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200, url
        return response.read()


def gif_frames(data: bytes) -> tuple[np.ndarray, list[int]]:
    """A GIF's frames as uint8 (T, H, W, 3) and how long each shows (ms)."""
    gif = Image.open(io.BytesIO(data))
    frames, durations = [], []
    for index in range(gif.n_frames):
        gif.seek(index)
        frames.append(np.asarray(gif.convert("RGB")))
        durations.append(gif.info["duration"])
    return np.stack(frames), durations


def mp4_num_frames(driver, tmp_path: Path) -> int:
    """Downloads the mp4 the page lists under "Files" and counts its frames."""
    links = [link.get_attribute("href") for link in driver.find_elements(By.CSS_SELECTOR, "#files a")]
    videos = [link for link in links if link and link.split("?")[0].endswith(".mp4")]
    assert len(videos) == 1, f"one mp4 among the files, got {links}"
    path = tmp_path / "completion.mp4"
    path.write_bytes(fetch(videos[0]))
    return len(read_video(path))


def screenshot(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / name
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    return path


# -- the tests ------------------------------------------------------------------------------------------------------


def test_textshapes_completion_in_the_page(app_url, browser, tmp_path):
    clip = textshapes.render_clip(CLIP)
    frame_path = tmp_path / "first-frame.png"
    Image.fromarray(clip.frames[0]).save(frame_path)

    open_page(browser, app_url)
    upload(browser, "first-frame", frame_path)
    type_caption(browser, clip.text)
    gif, durations = gif_frames(fetch(wait_for_clip(browser)))

    assert gif.shape == (NUM_FRAMES, 64 * GIF_SCALE, 64 * GIF_SCALE, 3)
    assert len(set(durations)) == 1, durations  # evenly paced
    frames = gif[:, ::GIF_SCALE, ::GIF_SCALE]  # back to the model's pixels (the GIF is a nearest-neighbour upscale)
    np.testing.assert_array_equal(frames[0], clip.frames[0])  # the given frame comes back exactly
    assert textshapes.follows_caption(frames, clip.text), "the completed clip does not move as the caption says"
    assert mp4_num_frames(browser, tmp_path) == NUM_FRAMES
    summary = browser.find_element(By.ID, "summary").text
    assert f"{NUM_FRAMES} frames" in summary and "frame 1 given" in summary, summary
    strip = browser.find_element(By.CSS_SELECTOR, "#strip img").get_attribute("src")
    assert Image.open(io.BytesIO(fetch(strip))).size[0] > NUM_FRAMES * 64  # the 8 frames side by side

    path = screenshot(browser, "app-screenshot.png")
    assert Image.open(path).size[0] >= 1000


@pytest.mark.parametrize(
    "case, expected",
    [
        ("infilling with one frame", "Infilling needs the last frame of the clip"),
        ("no caption", "Write a caption"),
        ("not an image", "Cannot read given frame image notes.png"),
    ],
)
def test_refused_inputs_are_messages_in_the_page(app_url, browser, tmp_path, case, expected):
    frame_path = tmp_path / "first-frame.png"
    Image.fromarray(textshapes.render_clip(CLIP).frames[0]).save(frame_path)
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("a text file with an image's name\n")

    open_page(browser, app_url)
    upload(browser, "first-frame", not_an_image if case == "not an image" else frame_path)
    if case == "infilling with one frame":
        choose(browser, "task", "infilling")
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "last-frame").is_displayed())
    if case != "no caption":
        type_caption(browser, CLIP.text)
    text = wait_for_message(browser, expected)

    assert "Traceback" not in text
    images = browser.find_elements(By.CSS_SELECTOR, "#clip img")
    assert not images or not images[0].get_attribute("src"), "a clip appeared for an input that was refused"


def test_domain_switch_and_textcam_photo(app_url, browser, tmp_path):
    open_page(browser, app_url)
    first_example = textcam.format_caption(("left",))
    choose(browser, "domain", "TextCam")
    WebDriverWait(browser, 30).until(
        lambda d: first_example in d.find_element(By.ID, "caption-examples").text
    )  # the caption examples follow the domain
    model = textcam_model()
    if not (model / "config.json").is_file():
        pytest.skip(f"no TextCam model in {model} (set MMVG_TEXTCAM_MODEL to a checkpoint folder)")

    caption = textcam.format_caption(("in", "left"))
    [example] = [button for button in browser.find_elements(By.CSS_SELECTOR, "#caption-examples button")
                 if button.text == caption]  # fmt: skip
    example.click()
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#caption textarea").get_attribute("value") == caption
    )
    photo = {path.name: path for path in textcam.default_photo_paths("held_out")}["chelsea.png"]
    upload(browser, "first-frame", photo)
    gif, durations = gif_frames(fetch(wait_for_clip(browser)))

    # Pillow writes a frame equal to the one before as a longer showing of that one: count the mp4's frames instead
    assert len(gif) > 1 and gif.shape[1:] == (64 * GIF_SCALE, 64 * GIF_SCALE, 3)
    assert mp4_num_frames(browser, tmp_path) == NUM_FRAMES
    screenshot(browser, "app-screenshot-textcam.png")
