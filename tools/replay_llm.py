"""Text streamed in as an LLM writes it, through the stream-input WebSocket.

usage: replay_llm.py URL [--out FILE] [--reps 3] [--seed 7]

Each paragraph below is replayed as a token stream with an LLM's statistics
(tokens of 1-4 characters, 30-60 tokens a second, drawn with a fixed seed; no
LLM runs here, so the stream is made, not recorded), into
`/v1/text-to-speech/af_heart/stream-input` (ElevenLabs' message shapes, PCM at
24 kHz). It reports, medians over paragraphs and repetitions:
  - clause latency: from sending the last character of the first clause (the
    first `.,;:!?` after 10 characters) to its first audio (goal: the TTFA budget);
  - stalls while playing from the first audio in real time (goal: none);
  - fidelity against the same text sent at once to `/v1/audio/speech` (whole):
    duration ratio, pauses of >= 80 ms the whole lacks, log-mel distance (dB),
    PocketSphinx WER of each.
Prints a summary and writes every figure as JSON.
"""
import argparse
import asyncio
import base64
import json
import os
import random
import statistics
import sys
import time

import httpx
import numpy as np
import websockets

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
from bench_stream import SR, distance, pauses, words  # noqa: E402
from conftest import transcribe, wer  # noqa: E402

PARAGRAPHS = [
    "Sure, I can help with that. The train to the city leaves every twenty minutes, "
    "so you should be fine if you leave by nine. Bring an umbrella, because rain is expected tonight.",
    "Here is a quick summary: the museum has a new exhibition about ancient maps, and it opens "
    "on Saturday. Tickets cost twelve dollars. Would you like me to book two?",
    "Great question. Neural models learn prosody from data, so pauses fall where a person would "
    "put them. A small model like Kokoro can now run on an ordinary processor, faster than real time.",
]


def tokens(text, rng):
    """Split `text` into LLM-like tokens: a word's leading space goes with it, and
    each word is cut into pieces of 1-4 characters."""
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, 4)
        j = min(len(text), i + n)
        # A space starts a token, as BPE tokens do (" world").
        k = text.find(" ", i + 1, j)
        if k > 0:
            j = k
        out.append(text[i:j])
        i = j
    return out


def first_clause_end(text):
    """Index of the mark that ends the first clause the server may cut."""
    for i, c in enumerate(text):
        if c in ".,;:!?" and i >= 9 and (i + 1 == len(text) or text[i + 1] == " "):
            return i
    return len(text) - 1


async def replay(url, text, rng, voice="af_heart"):
    """Stream `text` in, collect the audio: arrivals [(t, seconds)], PCM, clause
    latency, the final message and close code."""
    ws_url = url.replace("http://", "ws://").rstrip("/")
    ws_url += f"/v1/text-to-speech/{voice}/stream-input?model_id=eleven_flash_v2_5&output_format=pcm_24000"
    toks = tokens(text, rng)
    mark = first_clause_end(text)
    state = {"clause_sent": None, "all_sent": None}
    arrivals, chunks, msgs = [], [], []
    async with websockets.connect(ws_url, max_size=None) as ws:
        t0 = time.perf_counter()

        async def send():
            await ws.send(json.dumps({"text": " ", "voice_settings": {"stability": 0.5, "similarity_boost": 0.8}}))
            at = 0
            for tok in toks:
                await ws.send(json.dumps({"text": tok}))
                if state["clause_sent"] is None and at + len(tok) > mark:
                    state["clause_sent"] = time.perf_counter() - t0
                at += len(tok)
                await asyncio.sleep(1.0 / rng.uniform(30, 60))
            state["all_sent"] = time.perf_counter() - t0
            await ws.send(json.dumps({"text": ""}))

        sender = asyncio.create_task(send())
        async for raw in ws:
            m = json.loads(raw)
            msgs.append(m)
            if m.get("audio"):
                b = base64.b64decode(m["audio"])
                arrivals.append((time.perf_counter() - t0, len(b) / 2 / SR))
                chunks.append(b)
        await sender
        code = ws.close_code
    pcm = np.frombuffer(b"".join(chunks), "<i2").astype(np.float32) / 32768.0
    latency = arrivals[0][0] - state["clause_sent"] if arrivals else None
    return {"arrivals": arrivals, "pcm": pcm, "latency": latency, "messages": msgs, "close": code,
            "all_sent": state["all_sent"], "tokens": len(toks)}


def stalls(arrivals):
    """Playback from the first audio in real time: every time the player runs dry."""
    if not arrivals:
        return []
    ends, played, out = arrivals[0][0], 0.0, []
    for t, secs in arrivals:
        if t > ends + 1e-3 and played > 0:
            out.append({"at_audio_s": round(played, 3), "gap_s": round(t - ends, 3)})
        ends = max(ends, t) + secs
        played += secs
    return out


def whole(url, text, voice="af_heart"):
    r = httpx.post(f"{url.rstrip('/')}/v1/audio/speech", timeout=300,
                   json={"input": text, "response_format": "pcm", "stream": False, "voice": voice})
    r.raise_for_status()
    return np.frombuffer(r.content, "<i2").astype(np.float32) / 32768.0


def measure(url, text, seed):
    got = asyncio.run(replay(url, text, random.Random(seed)))
    ref = whole(url, text)
    extra = max(0, len(pauses(got["pcm"])) - len(pauses(ref)))
    return {
        "latency_s": got["latency"],
        "stalls": stalls(got["arrivals"]),
        "duration_ratio": len(got["pcm"]) / max(1, len(ref)),
        "extra_pauses": extra,
        "logmel_db": distance(got["pcm"], ref),
        "wer_streamed": wer(words(text), transcribe(got["pcm"])),
        "wer_whole": wer(words(text), transcribe(ref)),
        "close": got["close"],
        "tokens": got["tokens"],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--out")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    runs = []
    for rep in range(a.reps):
        for i, text in enumerate(PARAGRAPHS):
            r = measure(a.url, text, a.seed + 100 * rep + i)
            r["paragraph"] = i
            runs.append(r)
            print(f"paragraph {i} rep {rep}: latency {r['latency_s'] * 1000:.0f} ms, "
                  f"stalls {len(r['stalls'])}, duration x{r['duration_ratio']:.3f}, "
                  f"extra pauses {r['extra_pauses']}, log-mel {r['logmel_db']:.1f} dB, "
                  f"WER {r['wer_streamed']:.2f} (whole {r['wer_whole']:.2f})", flush=True)
    med = lambda k: statistics.median(r[k] for r in runs)
    summary = {
        "runs": len(runs),
        "latency_ms_median": round(med("latency_s") * 1000),
        "latency_ms_max": round(max(r["latency_s"] for r in runs) * 1000),
        "stalls_total": sum(len(r["stalls"]) for r in runs),
        "duration_ratio_median": round(med("duration_ratio"), 3),
        "extra_pauses_median": med("extra_pauses"),
        "logmel_db_median": round(med("logmel_db"), 2),
        "wer_streamed_median": round(med("wer_streamed"), 3),
        "wer_whole_median": round(med("wer_whole"), 3),
    }
    print(json.dumps(summary, indent=1))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"summary": summary, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
