"""The Wyoming protocol (Home Assistant) on the real model, with the `wyoming`
package's own client: describe, synthesize, streamed text in, and the errors."""
import asyncio
import os
import time

import numpy as np
import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.tts import (Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop,
                         SynthesizeStopped, SynthesizeVoice)

from conftest import transcribe, wer

HOST, PORT = os.environ.get("KOKORO_WYOMING_ADDR", "127.0.0.1:18890").rsplit(":", 1)
PORT = int(PORT)
SENTENCE = "The quick brown fox jumps over the lazy dog."
REPLY = ("Sure, the kitchen lights are off now. The front door is locked, and the "
         "thermostat is set to twenty degrees for the night.")


def words(t):
    return " ".join("".join(c for c in w if c.isalnum()) for w in t.lower().split())


async def read_until(client, stop, out):
    """Events until one of type `stop` (appended to `out` with their arrival time)."""
    while True:
        ev = await asyncio.wait_for(client.read_event(), 60)
        assert ev is not None, f"closed before {stop}: {[e.type for _, e in out]}"
        out.append((time.perf_counter(), ev))
        if ev.type == stop or Error.is_type(ev.type):
            return out


def pcm_of(events):
    return b"".join(AudioChunk.from_event(e).audio for _, e in events if AudioChunk.is_type(e.type))


def samples(pcm):
    return np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0


async def describe():
    async with AsyncTcpClient(HOST, PORT) as c:
        await c.write_event(Describe().event())
        return Info.from_event(await asyncio.wait_for(c.read_event(), 10))


def test_describe_lists_every_installed_voice_as_home_assistant_reads_it(http):
    info = asyncio.run(describe())
    assert len(info.tts) == 1
    tts = info.tts[0]
    assert tts.name == "kokoro" and tts.installed and tts.supports_synthesize_streaming
    listed = {v["id"] for v in http.get("/v1/audio/voices").json()["voices"]}
    assert {v.name for v in tts.voices} == listed
    heart = next(v for v in tts.voices if v.name == "af_heart")
    assert heart.languages == ["en-US"] and heart.description.startswith("Heart (")
    assert all(v.languages and v.attribution.name for v in tts.voices)


async def synthesize(text, voice=None):
    async with AsyncTcpClient(HOST, PORT) as c:
        sent = time.perf_counter()
        await c.write_event(Synthesize(text, voice=voice).event())
        return sent, await read_until(c, "audio-stop", [])


def test_synthesize_is_heard_and_streams_as_it_is_made():
    sent, events = asyncio.run(synthesize(SENTENCE, SynthesizeVoice(name="af_heart")))
    types = [e.type for _, e in events]
    assert types[0] == "audio-start" and types[-1] == "audio-stop", types
    start = AudioStart.from_event(events[0][1])
    assert (start.rate, start.width, start.channels) == (24000, 2, 1)
    chunks = [(t, e) for t, e in events if AudioChunk.is_type(e.type)]
    assert len(chunks) >= 2, types
    x = samples(pcm_of(events))
    assert 1.5 < len(x) / 24000 < 6, len(x)
    heard = transcribe(x)
    assert wer(words(SENTENCE), heard) <= 0.35, heard
    # Audio came as it was made: the first chunk well before the last.
    first, last = chunks[0][0] - sent, chunks[-1][0] - sent
    assert first < last, (first, last)
    stop = AudioStop.from_event(events[-1][1])
    assert stop.timestamp == len(x) * 1000 // 24000


async def streamed(pieces, delay):
    """synthesize-start, the pieces `delay` s apart, the fallback synthesize, stop."""
    async with AsyncTcpClient(HOST, PORT) as c:
        out = []
        reader = asyncio.create_task(read_until(c, "synthesize-stopped", out))
        t0 = time.perf_counter()
        await c.write_event(SynthesizeStart(voice=SynthesizeVoice(name="af_heart")).event())
        for p in pieces:
            await c.write_event(SynthesizeChunk(p).event())
            await asyncio.sleep(delay)
        await c.write_event(Synthesize("".join(pieces)).event())
        all_sent = time.perf_counter()
        await c.write_event(SynthesizeStop().event())
        await reader
        return t0, all_sent, out


def test_text_streamed_in_is_spoken_while_it_is_written_and_said_once():
    pieces = [w + " " for w in REPLY.split()]
    t0, all_sent, events = asyncio.run(streamed(pieces, 0.08))
    types = [e.type for _, e in events]
    assert types[-1] == "synthesize-stopped", types
    assert types.count("audio-start") == 1 and types.count("audio-stop") == 1, types
    first_chunk = next(t for t, e in events if AudioChunk.is_type(e.type))
    # The first sentence was spoken before the text was all written.
    assert first_chunk < all_sent, (first_chunk - t0, all_sent - t0)
    x = samples(pcm_of(events))
    heard = transcribe(x)
    assert wer(words(REPLY), heard) <= 0.35, heard
    # Said once (the fallback copy is not spoken too): about as long as the whole.
    _, whole = asyncio.run(synthesize(REPLY, SynthesizeVoice(name="af_heart")))
    n = len(pcm_of(whole)) / 2
    assert 0.8 * n < len(x) < 1.25 * n, (len(x), n)


async def error_of(event):
    async with AsyncTcpClient(HOST, PORT) as c:
        await c.write_event(event)
        ev = await asyncio.wait_for(c.read_event(), 10)
        # The connection stays usable after an error.
        await c.write_event(Describe().event())
        after = await asyncio.wait_for(c.read_event(), 10)
        return Error.from_event(ev) if Error.is_type(ev.type) else ev, after.type


@pytest.mark.parametrize("voice", ["af_nobody", "af_heart(1)+zz(1)"])
def test_a_bad_voice_gets_the_http_apis_error(http, voice):
    err, after = asyncio.run(error_of(Synthesize("Hello.", voice=SynthesizeVoice(name=voice)).event()))
    assert isinstance(err, Error), err
    api = http.post("/v1/audio/speech", json={"input": "Hello.", "voice": voice}).json()["error"]
    assert (err.code, err.text) == (api["code"], api["message"])
    assert after == "info"


def test_too_much_text_is_refused_before_synthesis(http):
    text = "word " * 2000
    err, after = asyncio.run(error_of(Synthesize(text).event()))
    api = http.post("/v1/audio/speech", json={"input": text}).json()["error"]
    assert isinstance(err, Error) and err.code == api["code"], (err, api)
    assert after == "info"
