"""The playground in a real browser: it loads cleanly, plays while the speech streams,
highlights the spoken word, shows the API's errors in the API's words, builds blends,
downloads, and is usable from the keyboard and at phone width."""
import json
import random
import struct
import urllib.error
import urllib.request

import pytest

from conftest import BACKEND, EDGE, NN, SHOTS

# Half a second of audio scheduled and the clock past it: playback has started.
PLAYING = """() => { const s = window.kokoroPlayground;
  return s.ctx && s.samplesScheduled > 12000 && s.ctx.currentTime > 0.5 && s.wordsSeen > 0; }"""


def fresh_text():
    return f"The playground reads sentence number {random.SystemRandom().randint(1, 99999)} aloud."


def api_error(base, body):
    req = urllib.request.Request(
        base + "/v1/audio/speech",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    return json.loads(e.value.read())["error"]["message"]


@pytest.mark.parametrize("base", [BACKEND, EDGE], ids=["backend", "edge"])
def test_loads_clean_plays_streamed_and_highlights_words(page, base):
    p = page.open(base)
    assert p.url.endswith("/web")
    p.fill("#text", fresh_text())
    assert p.text_content("#count").startswith(f"{len(p.input_value('#text'))} / 4096")
    p.click("#play")
    p.wait_for_function(PLAYING, timeout=60_000)
    # The first audio came before the whole text was done, and words light up in turn.
    p.wait_for_selector("#spoken .word.now, #spoken .word.done", timeout=30_000)
    p.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Done')",
                        timeout=60_000)
    words = p.eval_on_selector_all("#spoken .word", "els => els.map(e => e.textContent)")
    assert words[:3] == ["The", "playground", "reads"], words
    if base == BACKEND:
        p.screenshot(path=str(SHOTS / "desktop.png"), full_page=True)
    assert page.errors == []
    # Nothing but this origin was asked for.
    assert all(u.startswith(base) or u.startswith("data:") or u.startswith("blob:")
               for u in page.requests), page.requests


@pytest.mark.parametrize("base", [BACKEND, EDGE], ids=["backend", "edge"])
def test_a_bad_request_shows_the_apis_message(page, base):
    p = page.open(base)
    p.fill("#voice", "xx_nobody")
    p.click("#play")
    p.wait_for_selector("#error:not([hidden])")
    want = api_error(base, {"model": "kokoro", "input": p.input_value("#text"), "voice": "xx_nobody",
                            "response_format": "pcm", "stream": True, "stream_format": "sse",
                            "timestamps": "word"})
    assert p.text_content("#error") == want
    # Over the limit: the count says so and the server's words come back.
    p.fill("#voice", "af_heart")
    p.fill("#text", "a" * 4097)
    assert p.text_content("#count").startswith("4097 / 4096")
    p.click("#download")
    p.wait_for_function("() => document.querySelector('#error').textContent.includes('4096')")
    assert "4097" in p.text_content("#error")
    # An API error is not a console error of the page's own.
    assert all("Failed to load resource" in e for e in page.errors), page.errors


def test_blend_builder_and_download(page):
    p = page.open(EDGE)
    p.fill("#text", fresh_text())
    p.fill("#voice-search", "af_")
    ids = p.eval_on_selector_all("#voice-list option", "os => os.map(o => o.value)")
    assert ids and all(i.startswith("af_") for i in ids), ids
    p.select_option("#voice-list", "af_heart")
    p.fill("#blend-weight", "2")
    p.click("#blend-add")
    p.fill("#voice-search", "")
    other = next(i for i in p.eval_on_selector_all("#voice-list option", "os => os.map(o => o.value)")
                 if i != "af_heart")
    p.select_option("#voice-list", other)
    p.fill("#blend-weight", "1")
    p.click("#blend-add")
    blend = f"af_heart(2)+{other}(1)"
    assert p.input_value("#voice") == blend
    assert blend in p.text_content("#curl") and blend in p.text_content("#sdk")
    p.select_option("#format", "wav")
    with p.expect_download(timeout=90_000) as d:
        p.click("#download")
    data = open(d.value.path(), "rb").read()
    assert d.value.suggested_filename == "speech.wav"
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    (rate,) = struct.unpack("<I", data[24:28])
    seconds = (len(data) - 44) / 2 / rate
    assert rate == 24000 and 1.5 < seconds < 12, seconds
    pcm = struct.unpack(f"<{(len(data) - 44) // 2}h", data[44:44 + (len(data) - 44) // 2 * 2])
    assert max(abs(x) for x in pcm) > 3000  # speech, not silence
    assert page.errors == []


def test_keyboard_and_phone_width(phone):
    p = phone.open(BACKEND)
    # No sideways scrolling at phone width.
    assert p.evaluate("document.documentElement.scrollWidth") <= 360
    p.fill("#text", fresh_text())
    # From the last field, Tab reaches Play and Enter starts it.
    p.focus("#key")
    p.keyboard.press("Tab")
    assert p.evaluate("document.activeElement.id") == "play"
    p.keyboard.press("Enter")
    p.wait_for_function(PLAYING, timeout=60_000)
    p.screenshot(path=str(SHOTS / "phone.png"), full_page=True)
    assert phone.errors == []


@pytest.mark.skipif(not NN, reason="no wasi-nn edge")
def test_the_wasi_nn_edge_serves_it_with_no_backend(page):
    p = page.page
    p.goto(NN + "/web")
    assert p.title() == "kokoro-edge playground"
    assert p.evaluate("getComputedStyle(document.body).maxWidth") != "none"  # style sheet loaded


def server_answer(base, body: str):
    req = urllib.request.Request(base + "/v1/audio/speech", data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, b""
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.parametrize("base", [BACKEND, EDGE], ids=["backend", "edge"])
def test_the_preview_runs_the_servers_rules_in_the_page(page, base):
    p = page.open(base)
    p.wait_for_function("() => window.kokoroPlayground.preview !== null", timeout=30_000)
    p.fill("#text", "It costs $5. [pause:0.5s] Then we go home.")
    p.wait_for_function("() => document.querySelectorAll('#preview-pieces li').length === 3")
    pieces = p.eval_on_selector_all("#preview-pieces li", "els => els.map(e => e.textContent)")
    assert pieces == ["It costs five dollars.", "pause 0.5 s", "Then we go home."], pieces
    assert p.text_content("#preview-summary").startswith("42 of 4096 characters")
    # Each mistake: the page shows the body the server answers, byte for byte.
    shown = ""
    for text, voice, status in [
        ("... !!! [pause:1s]", "af_heart", 422),
        ("a" * 4097, "af_heart", 400),
        ("Hello there.", "af_bella(0)+af_sky", 400),
        ("Hello there.", "xx_nobody", 400),
    ]:
        p.fill("#text", text)
        p.fill("#voice", voice)
        # Each case's error differs from the last one's: wait for this one.
        p.wait_for_function(
            "prev => { const e = document.querySelector('#preview-error');"
            " return !e.hidden && e.textContent !== prev; }", arg=shown)
        shown = p.text_content("#preview-error")
        body = p.evaluate("JSON.stringify(playBody())")
        got_status, got = server_answer(base, body)
        assert got_status == status, (text[:20], voice, got)
        assert shown.encode() == got, (shown, got)
        assert p.text_content("#preview-summary") == f"The server will answer {status}:"
    assert page.errors == []
