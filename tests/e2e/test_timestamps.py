"""Word timestamps on the real model, through the backend and the edge: SSE
`speech.audio.timestamps` events and Kokoro-FastAPI's /dev/captioned_speech."""
import base64
import json
import os
import re

import httpx
import numpy as np
import pytest

from conftest import URL, align, to16k

EDGE = os.environ.get("KOKORO_EDGE_URL", "http://127.0.0.1:3000")
TEXT = "It costs $12.99 [pause:0.5s] at the shop, said [Kokoro](/kˈOkəɹO/) on 2024-03-05."
# The words of TEXT as sent: markup is not a word; a rewrite is one word.
WORDS = ["It", "costs", "$12.99", "at", "the", "shop", "said", "Kokoro", "on", "2024-03-05"]
MARKUP = re.compile(r"\[pause:[^\]]*\]|\]\(/[^)]*/\)|\[")


@pytest.fixture(scope="module", params=["backend", "edge"])
def server(request):
    with httpx.Client(base_url=URL if request.param == "backend" else EDGE, timeout=120) as c:
        yield c


def sse(body: str):
    return [json.loads(e[len("data: "):]) for e in body.split("\n\n") if e.startswith("data: ")]


def check_spans(text, words):
    """In order, never overlapping, each the text it names; every letter or digit
    of the input outside markup lies in a word."""
    covered = [False] * len(text)
    last = 0
    for w in words:
        a, z = w["char_start"], w["char_end"]
        assert last <= a < z <= len(text), w
        assert text[a:z] == w["word"], w
        covered[a:z] = [True] * (z - a)
        last = z
    bare = MARKUP.sub(lambda m: " " * len(m.group(0)), text)
    missed = [c for i, c in enumerate(bare) if c.isalnum() and not covered[i]]
    assert not missed, missed


def test_sse_timestamps_come_before_the_audio_they_time(server, fresh):
    text = f"{TEXT} Take {fresh} steps."
    body = {"input": text, "stream_format": "sse", "timestamps": "word", "response_format": "pcm"}
    r = server.post("/v1/audio/speech", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.text)
    assert events[0]["type"] == "speech.audio.timestamps"
    words, audio_s = [], 0.0
    for e in events:
        if e["type"] == "speech.audio.timestamps":
            for w in e["words"]:
                # Sent before the audio that carries it.
                assert w["start"] >= audio_s - 0.02, (w, audio_s)
            words += e["words"]
        elif e["type"] == "speech.audio.delta":
            audio_s += len(base64.b64decode(e["audio"])) / 2 / 24000
    assert [w["word"] for w in words][:len(WORDS)] == WORDS
    check_spans(text, words)
    ends = [(w["start"], w["end"]) for w in words]
    assert all(s < e for s, e in ends) and all(a[1] <= b[0] + 1e-6 for a, b in zip(ends, ends[1:]))
    assert ends[-1][1] <= audio_s + 1e-3
    # The half-second pause lies between "$12.99" and "at".
    assert words[3]["start"] - words[2]["end"] >= 0.5 - 0.03


def test_captioned_speech_whole_and_streamed_agree(server):
    whole = server.post("/dev/captioned_speech", json={"input": TEXT, "stream": False, "response_format": "wav"})
    assert whole.status_code == 200, whole.text
    v = whole.json()
    assert v["audio_format"] == "wav" and base64.b64decode(v["audio"])[:4] == b"RIFF"
    assert [t["word"] for t in v["timestamps"]] == WORDS
    r = server.post("/dev/captioned_speech", json={"input": TEXT, "response_format": "pcm"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in r.text.splitlines() if x]
    assert len(lines) >= 2
    sent = 0.0
    for i, x in enumerate(lines):
        sent += len(base64.b64decode(x["audio"])) / 2 / 24000
        # Each line carries the words that begin in the audio sent so far.
        assert all(t["start_time"] < sent + 0.001 or i == len(lines) - 1 for t in x["timestamps"]), (x, sent)
    streamed = [t for x in lines for t in x["timestamps"]]
    assert [t["word"] for t in streamed] == WORDS
    # Streamed pieces are windowed, whole ones are not: the timeline is the same.
    for a, b in zip(v["timestamps"], streamed):
        assert abs(a["start_time"] - b["start_time"]) < 0.03, (a, b)
    bad = server.post("/dev/captioned_speech", json={"input": "a", "timestamps": "word"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "timestamps"


def test_word_starts_agree_with_forced_alignment(http):
    """PocketSphinx aligns the same audio; tools/bench_timestamps.py measures 32
    sentences, this checks three against the issue's goal (median <= 40 ms)."""
    errors = []
    for text in ["The quick brown fox jumps over the lazy dog.",
                 "Wait for it. [pause:1s] Now open the door.",
                 "Three hundred people waited outside in the cold."]:
        v = http.post("/dev/captioned_speech", json={"input": text, "stream": False, "response_format": "pcm"}).json()
        spoken = re.sub(r"\[pause:[^\]]*\]", " ", text).replace(".", " ").lower().split()
        al = align(to16k(base64.b64decode(v["audio"])), spoken)
        assert al is not None and len(al) == len(spoken), al
        stamps = [t for t in v["timestamps"]]
        assert [t["word"].lower() for t in stamps] == spoken
        errors += [abs(t["start_time"] - a[1]) for t, a in zip(stamps, al)]
    assert np.median(errors) <= 0.040, sorted(errors)
