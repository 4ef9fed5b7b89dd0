"""End-to-end tests against a running backend (started by `make e2e`)."""
import os
import random

import httpx
import numpy as np
import pytest

URL = os.environ.get("KOKORO_URL", "http://127.0.0.1:8880")


@pytest.fixture(scope="session")
def url():
    return URL


@pytest.fixture(scope="session")
def fresh():
    """A number unique to this session: text that says it misses every cache, so the
    suite can run again against the same servers (the integration gate runs it twice)."""
    return random.SystemRandom().randint(1, 999_999)


@pytest.fixture(scope="session")
def http():
    with httpx.Client(base_url=URL, timeout=120) as c:
        yield c


def wav_to_float(data: bytes) -> np.ndarray:
    assert data[:4] == b"RIFF" and data[36:40] == b"data"
    return np.frombuffer(data[44:], dtype="<i2").astype(np.float32) / 32768.0


def transcribe(samples_24k: np.ndarray) -> str:
    """PocketSphinx (its bundled US English model) on audio resampled to 16 kHz."""
    from pocketsphinx import Decoder

    n = int(len(samples_24k) * 2 / 3)
    x16 = np.interp(np.linspace(0, len(samples_24k) - 1, n), np.arange(len(samples_24k)), samples_24k)
    pcm = (np.clip(x16, -1, 1) * 32767).astype("<i2").tobytes()
    d = Decoder(samprate=16000, loglevel="FATAL")
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    return d.hyp().hypstr if d.hyp() else ""


def wer(ref: str, hyp: str) -> float:
    r, h = ref.lower().split(), hyp.lower().split()
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)] / max(1, len(r))


def to16k(pcm: bytes) -> bytes:
    """24 kHz s16le PCM as 16 kHz s16le PCM (what PocketSphinx's model takes)."""
    x = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
    n = int(len(x) * 2 / 3)
    y = np.interp(np.linspace(0, len(x) - 1, n), np.arange(len(x)), x)
    return (np.clip(y, -1, 1) * 32767).astype("<i2").tobytes()


def align(raw16: bytes, words):
    """PocketSphinx forced alignment of `words` (lowercase, in its dictionary) to
    16 kHz PCM: [(word, start_s, end_s)], or None when a word is not in the
    dictionary."""
    from pocketsphinx import Decoder

    d = Decoder(samprate=16000, loglevel="FATAL")
    if not all(d.lookup_word(w) for w in words):
        return None
    d.set_align_text(" ".join(words))
    d.start_utt()
    d.process_raw(raw16, full_utt=True)
    d.end_utt()
    return [(s.word, s.start_frame / 100, (s.end_frame + 1) / 100) for s in d.seg()
            if s.word not in ("<s>", "</s>", "<sil>") and not s.word.startswith("[")]
