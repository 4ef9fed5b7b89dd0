"""Text in as it is written: the stream-input WebSocket on the real model, through
the backend and through the edge host's passthrough, with the `websockets` client
speaking ElevenLabs' message shapes."""
import asyncio
import json
import os
import random
import sys
import time

import httpx
import pytest
import websockets

from conftest import URL, transcribe, wer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
from bench_stream import play  # noqa: E402
from replay_llm import replay, stalls  # noqa: E402

EDGE = os.environ.get("KOKORO_EDGE_URL", "http://127.0.0.1:3000")
TEXT = ("Sure, I can help with that. The train to the city leaves every twenty minutes, "
        "so you should be fine if you leave by nine. Bring an umbrella, because rain is "
        "expected tonight.")


def words(t):
    return " ".join("".join(c for c in w if c.isalnum()) for w in t.lower().split())


@pytest.mark.parametrize("base", [URL, EDGE], ids=["backend", "edge"])
def test_an_llm_token_stream_is_spoken_while_it_is_written(base):
    got = asyncio.run(replay(base, TEXT, random.Random(3)))
    assert got["close"] == 1000
    assert got["messages"][-1]["isFinal"] is True
    # Audio began before the text was all sent: the first clause was spoken early.
    first_audio = got["arrivals"][0][0]
    assert got["latency"] is not None and got["latency"] < 2.0, got["latency"]
    assert first_audio < got["all_sent"], (first_audio, got["all_sent"])
    # What was heard is the text; every character is aligned once, in order.
    heard = transcribe(got["pcm"])
    assert wer(words(TEXT), heard) <= 0.35, heard
    chars = "".join(c for m in got["messages"] if m.get("alignment") for c in m["alignment"]["chars"])
    assert chars == " " + TEXT  # the first message's space too
    # The alignment's words land inside the audio they came with.
    for m in got["messages"]:
        a = m.get("alignment")
        if a and m.get("audio"):
            assert all(t >= 0 for t in a["charStartTimesMs"])
    # Played from the first audio, the socket keeps up as well as the same text
    # streamed whole over HTTP on this machine (a stall is silence the listener
    # hears; decoding speed is the machine's, so the measure is side by side).
    ws_stalled = sum(s["gap_s"] for s in stalls(got["arrivals"]))
    with httpx.Client(base_url=URL, timeout=120) as c:
        http_stalled = play(c, TEXT)["stalled_s"]
    assert ws_stalled <= http_stalled + 0.5, (ws_stalled, http_stalled)


def test_a_plain_request_is_told_to_upgrade():
    for base in (URL, EDGE):
        r = httpx.get(f"{base}/v1/text-to-speech/af_heart/stream-input", timeout=30)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "upgrade_required"


@pytest.mark.parametrize("base", [URL, EDGE], ids=["backend", "edge"])
def test_handshake_and_message_errors(base):
    ws_base = base.replace("http://", "ws://")

    async def go():
        with pytest.raises(websockets.exceptions.InvalidStatus) as e:
            async with websockets.connect(f"{ws_base}/v1/text-to-speech/zz_nobody/stream-input"):
                pass
        assert e.value.response.status_code == 400
        assert json.loads(e.value.response.body)["error"]["param"] == "voice"
        with pytest.raises(websockets.exceptions.InvalidStatus) as e:
            async with websockets.connect(
                    f"{ws_base}/v1/text-to-speech/af_heart/stream-input?output_format=ulaw_8000"):
                pass
        assert e.value.response.status_code == 422
        async with websockets.connect(f"{ws_base}/v1/text-to-speech/af_heart/stream-input") as ws:
            await ws.send("{not json")
            msg = json.loads(await ws.recv())
            assert msg["error"]["code"] == "invalid_json"
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1008

    asyncio.run(go())


def status_idle():
    s = httpx.get(f"{URL}/status", timeout=10).json()
    m = httpx.get(f"{URL}/metrics", timeout=10).text
    in_flight = [l for l in m.splitlines() if l.startswith("kokoro_requests_in_flight ")]
    return s["queue"]["admitted"] == 0 and in_flight and float(in_flight[0].split()[1]) == 0


@pytest.mark.parametrize("base", [URL, EDGE], ids=["backend", "edge"])
def test_a_client_that_leaves_mid_utterance_frees_everything(base):
    ws_url = base.replace("http://", "ws://") + "/v1/text-to-speech/af_heart/stream-input?output_format=pcm_24000"
    long = "This is one of many sentences that keep the server busy for a good while. " * 8

    async def go():
        ws = await websockets.connect(ws_url)
        await ws.send(json.dumps({"text": " "}))
        await ws.send(json.dumps({"text": long}))
        first = json.loads(await asyncio.wait_for(ws.recv(), 60))
        assert first.get("audio")
        assert not status_idle()
        # Gone without a close handshake: the TCP connection just ends.
        ws.transport.abort()

    asyncio.run(go())
    t0 = time.time()
    while time.time() - t0 < 5 and not status_idle():
        time.sleep(0.05)
    assert status_idle(), "permit and runs were not freed within 5 s"
