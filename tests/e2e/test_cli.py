"""`kokoro-backend say --server URL`: the command line against the running backend
and the edge in front of it, on the real model."""
import os
import subprocess

import pytest

from conftest import URL, transcribe, wav_to_float, wer

EDGE = os.environ.get("KOKORO_EDGE_URL", "http://127.0.0.1:3000")
BIN = os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "kokoro-backend")
TEXT = "Please call me tomorrow about the meeting."


def say(server, out, *args, text=TEXT):
    env = {k: v for k, v in os.environ.items() if k not in ("KOKORO_API_KEY", "OPENAI_API_KEY")}
    return subprocess.run([BIN, "say", "--server", server, "-o", str(out), *args, text],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("base", [URL, EDGE], ids=["backend", "edge"])
def test_say_streams_a_file_from_a_running_server(tmp_path, base, fresh):
    out = tmp_path / "out.wav"
    r = say(base, out, "--voice", "af_bella", text=f"{TEXT} Number {fresh}.")
    assert r.returncode == 0, r.stderr
    assert "100% of the text spoken" in r.stderr, r.stderr
    data = out.read_bytes()
    x = wav_to_float(data)
    assert 1.5 < len(x) / 24000 < 8
    heard = transcribe(x)
    assert wer(TEXT.lower().rstrip("."), " ".join(heard.split()[:7])) <= 0.35, heard
    mp3 = tmp_path / "out.mp3"
    r = say(base, mp3)
    assert r.returncode == 0, r.stderr
    head = mp3.read_bytes()[:3]
    assert head == b"ID3" or head[0] == 0xFF, head


@pytest.mark.parametrize("base", [URL, EDGE], ids=["backend", "edge"])
def test_say_shows_the_apis_error_and_writes_nothing(tmp_path, base, http):
    out = tmp_path / "bad.wav"
    r = say(base, out, "--voice", "af_nobody")
    assert r.returncode != 0
    api = http.post("/v1/audio/speech", json={"input": TEXT, "voice": "af_nobody"}).json()["error"]
    assert api["message"] in r.stderr, r.stderr
    assert not out.exists() and not (tmp_path / "bad.wav.part").exists()
    r = say("http://127.0.0.1:9", out)
    assert r.returncode != 0 and "cannot reach" in r.stderr, r.stderr
