"""The server's web page in a real headless Chromium (Debian's chromium + chromium-driver, driven
by Selenium): a file picked in the page and, through Chromium's fake microphone fed from a wav,
live speech, come back as the text our API gives; live partials show while the microphone runs."""

import json
import os
import shutil
import time

import numpy as np
import pytest
import scipy.signal
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from conftest import running_server
from funasr_lite.api import VAD, SpeechRecognizer, TwoPass
from funasr_lite.serve.engine import ServeEngine, ServeOptions


def chromium(fake_audio=None):
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "Debian's chromium and chromium-driver are missing: run bash tools/setup.sh --test"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    if fake_audio:
        options.add_argument(f"--use-file-for-fake-audio-capture={fake_audio}%noloop")
    return webdriver.Chrome(service=Service(driver), options=options)


def wait_for(condition, what, limit_s=120.0):
    deadline = time.monotonic() + limit_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class RecordingStream:
    """Wraps a streaming session and keeps the samples the server fed it (what the page sent)."""

    def __init__(self, session, sink):
        self.session, self.sink = session, sink

    def feed(self, samples, is_final=False):
        self.sink.append(np.array(samples, dtype=np.float32))
        return self.session.feed(samples, is_final)

    def finish(self, samples=None):
        if samples is not None:
            self.sink.append(np.array(samples, dtype=np.float32))
        return self.session.finish(samples)

    def __getattr__(self, name):
        return getattr(self.session, name)


@pytest.fixture(scope="module")
def served(model_dirs):
    engine = ServeEngine(ServeOptions(model_dir=model_dirs["offline"], online_model_dir=model_dirs["online"],
                                      punc_model_dir=model_dirs["punc"]))
    received = []
    make = engine.online_stream
    engine.online_stream = lambda *args: RecordingStream(make(*args), received)
    with running_server(engine) as (http, ws, _):
        yield http, received


def page_text(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def test_a_picked_file_in_2pass_mode_shows_the_apis_text_and_sentences(served, model_dirs, recording):
    http, _ = served
    samples, path = recording
    offline = SpeechRecognizer.from_model_dir(model_dirs["offline"])
    online = SpeechRecognizer.from_model_dir(model_dirs["online"])
    from funasr_lite.models.punc import Punctuator

    session = TwoPass(online, offline, VAD.from_model_dir(), Punctuator.from_model_dir(model_dirs["punc"])).stream(
        (5, 10, 5), 4, 0)
    for i in range(0, samples.size, 1600):  # the page sends 100 ms messages
        session.feed(samples[i:i + 1600].astype(np.float32) / 32768)
    session.finish()
    expected = "".join(segment["text"] for segment in session.segments)
    assert len(session.segments) >= 2 and len(expected) >= 10
    driver = chromium()
    try:
        driver.get(http + "/")
        wait_for(lambda: "modes: offline, online, 2pass" in page_text(driver, "model"), "the page to load")
        driver.find_element(By.CSS_SELECTOR, "input[name=mode][value='2pass']").click()
        driver.find_element(By.ID, "file").send_keys(path)
        driver.find_element(By.ID, "send_file").click()
        wait_for(lambda: driver.find_element(By.ID, "final").get_attribute("data-done"), "the final text")
        assert page_text(driver, "final") == expected
        rows = driver.find_elements(By.CSS_SELECTOR, "#sentences tr")
        assert len(rows) >= len(session.segments)
        assert "".join(row.find_elements(By.TAG_NAME, "td")[1].text for row in rows) == expected
    finally:
        driver.quit()


def test_the_microphone_in_online_mode_shows_partials_then_the_apis_text(served, model_dirs, recording):
    http, received = served
    samples, path = recording
    received.clear()
    driver = chromium(fake_audio=path)
    try:
        driver.get(http + "/")
        wait_for(lambda: "modes:" in page_text(driver, "model"), "the page to load")
        driver.find_element(By.CSS_SELECTOR, "input[name=mode][value='online']").click()
        driver.find_element(By.ID, "start").click()
        partial = wait_for(lambda: page_text(driver, "partial"), "live partial text")
        # progress, not the clock: stop once the server has received the whole recording
        wait_for(lambda: sum(piece.size for piece in received) >= samples.size + 16000, "the recording to play",
                 limit_s=180)
        driver.find_element(By.ID, "stop").click()
        wait_for(lambda: driver.find_element(By.ID, "final").get_attribute("data-done"), "the final text")
        final = page_text(driver, "final")
    finally:
        driver.quit()
    heard = np.concatenate(received)
    # the page shows what our API makes of the audio the server received from the microphone...
    api = SpeechRecognizer.from_model_dir(model_dirs["online"]).stream((5, 10, 5), 4, 0)
    for piece in received:
        api.feed(piece)
    assert final == api.finish().text and final.startswith(partial)
    # ...and that audio is the wav Chromium's fake microphone played (48 kHz -> 16 kHz in the page)
    reference = samples.astype(np.float32) / 32768
    window = reference[16000:48000]
    search = heard[: 5 * 16000 + window.size].astype(np.float64)
    dots = scipy.signal.correlate(search, window.astype(np.float64), mode="valid", method="fft")
    energy = np.concatenate([[0.0], np.cumsum(search ** 2)])
    norms = np.sqrt(energy[window.size:] - energy[:-window.size])[: dots.size]
    best = float(np.max(dots / (norms * np.linalg.norm(window) + 1e-9)))
    assert best > 0.9, f"the received audio does not match the wav (best correlation {best:.3f})"
