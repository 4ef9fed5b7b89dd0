"""Streamed speech against the same request whole, on a running server.

usage: bench_stream.py URL [--out FILE] [--reps 3]

For each of the fixed sentences below, the server is asked for 24 kHz PCM twice,
streamed and not, and the two are compared:
  - duration ratio (goal: within 3%);
  - pauses (>= 80 ms of silence inside the speech) the streamed one has and the
    whole one lacks (goal: none);
  - log-mel RMS distance in dB, as sent and with the level difference removed;
  - PocketSphinx word error rate of each against the text (goal: not worse).
Then playback continuity: a sentence and a paragraph are streamed `--reps` times
and played, in simulation, in real time from their first byte; every time the
player runs dry is a stall (goal: none), and the first byte's time is TTFA.
Prints a summary and writes every figure as JSON.
"""
import argparse
import json
import os
import sys
import time

import httpx
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
from conftest import transcribe, wer  # noqa: E402

SR = 24000
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me tomorrow morning.",
    "We met on a cold morning in early spring.",
    "Speech synthesis has come a long way.",
    "Early systems glued recorded fragments together, and they sounded robotic.",
    "Neural models learn prosody from data, so pauses fall where a person would put them.",
    "Hello world.",
    "It costs twelve dollars and ninety nine cents.",
    "Kokoro can now run on an ordinary processor, faster than real time.",
    "The library opens at nine and closes at five.",
    "She sells sea shells by the sea shore.",
    "Turn left at the second light, then keep going until you see the river.",
    "My grandmother kept a garden full of roses and tomatoes.",
    "The train to the city leaves every twenty minutes.",
    "Could you send me the report before the meeting starts?",
    "Rain is expected tonight, so bring an umbrella.",
    "The children laughed as the puppy chased its own tail.",
    "A good night of sleep makes a long day much easier.",
    "We will review your application and answer within a week.",
    "The museum has a new exhibition about ancient maps.",
    "Thank you for calling, how can I help you today?",
    "Water boils at one hundred degrees at sea level.",
]
PARAGRAPH = (
    "Speech synthesis has come a long way. Early systems glued recorded fragments together, "
    "and they sounded robotic. Neural models changed that: they learn prosody from data, so pauses "
    "and emphasis fall where a person would put them. A small model like Kokoro can now run on an "
    "ordinary processor, faster than real time, which makes it practical for services at the edge."
)


def pcm(client, text, stream):
    body = {"input": text, "response_format": "pcm", "stream": stream, "voice": "af_heart"}
    r = client.post("/v1/audio/speech", json=body)
    r.raise_for_status()
    return np.frombuffer(r.content, dtype="<i2").astype(np.float32) / 32768.0


def pauses(x, min_ms=80, frame_ms=10, thr=0.01):
    """Silent runs of >= min_ms strictly inside the speech, as (start_s, length_s)."""
    n = SR * frame_ms // 1000
    rms = np.sqrt(np.array([np.mean(x[i:i + n] ** 2) for i in range(0, len(x) - n, n)]))
    loud = np.nonzero(rms > thr)[0]
    if len(loud) == 0:
        return []
    out, run = [], 0
    for i in range(loud[0], loud[-1] + 1):
        if rms[i] <= thr:
            run += 1
        else:
            if run * frame_ms >= min_ms:
                out.append(((i - run) * frame_ms / 1000, run * frame_ms / 1000))
            run = 0
    return out


def mel_bank(nfft=1024, bands=80):
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)
    mel = lambda h: 2595 * np.log10(1 + h / 700)
    bins = np.floor((nfft + 1) * hz(np.linspace(mel(0), mel(SR / 2), bands + 2)) / SR).astype(int)
    fb = np.zeros((bands, nfft // 2 + 1))
    for i in range(bands):
        lo, c, hi = bins[i], bins[i + 1], bins[i + 2]
        fb[i, lo:c] = (np.arange(lo, c) - lo) / max(c - lo, 1)
        fb[i, c:hi] = (hi - np.arange(c, hi)) / max(hi - c, 1)
    return fb


BANK = mel_bank()


def logmel(x, nfft=1024, hop=256):
    w = np.hanning(nfft)
    frames = np.array([x[i:i + nfft] * w for i in range(0, len(x) - nfft, hop)])
    return 10 * np.log10(BANK @ (np.abs(np.fft.rfft(frames, axis=1)) ** 2).T + 1e-10)


def distance(a, ref, level_matched=False):
    n = min(len(a), len(ref))
    ma, mr = logmel(a[:n]), logmel(ref[:n])
    keep = mr.max(axis=0) > mr.max() - 60
    d = (ma - mr)[:, keep]
    if level_matched:
        d = d - d.mean()
    return float(np.sqrt((d ** 2).mean()))


def words(text):
    return " ".join("".join(c for c in w if c.isalnum() or c == "'") for w in text.lower().split())


def play(client, text):
    """Stream `text`, then play it from its first byte: TTFA, stalls, stalled seconds."""
    body = {"input": text, "response_format": "pcm", "stream": True, "voice": "af_heart"}
    arrivals = []
    t0 = time.perf_counter()
    with client.stream("POST", "/v1/audio/speech", json=body) as r:
        r.raise_for_status()
        for chunk in r.iter_raw():
            if chunk:
                arrivals.append((time.perf_counter() - t0, len(chunk) / 2 / SR))
    ttfa = arrivals[0][0]
    # `ends`: when the audio received so far has finished playing. A chunk that
    # arrives after that is a stall (the player ran dry) of the difference.
    ends, played, stalls, stalled = ttfa, 0.0, [], 0.0
    for t, secs in arrivals:
        if t > ends + 1e-3 and played > 0:
            stalls.append({"at_audio_s": round(played, 3), "gap_s": round(t - ends, 3)})
            stalled += t - ends
        ends = max(ends, t) + secs
        played += secs
    total = sum(s for _, s in arrivals)
    return {"ttfa_ms": ttfa * 1e3, "stalls": stalls, "stalled_s": stalled, "audio_s": total,
            "last_byte_s": arrivals[-1][0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="target/bench-stream.json")
    a = ap.parse_args()
    rows = []
    with httpx.Client(base_url=a.url, timeout=300) as c:
        for text in SENTENCES:
            s, w = pcm(c, text, True), pcm(c, text, False)
            ps, pw = pauses(s), pauses(w)
            ratio = len(w) / len(s) if len(s) else 0
            # A streamed pause the whole version lacks: none of its pauses within 150 ms.
            extra = [p for p in ps if not any(abs(p[0] - q[0] * (len(s) / len(w))) < 0.15 for q in pw)]
            ref = words(text)
            rows.append({
                "text": text, "stream_s": len(s) / SR, "whole_s": len(w) / SR,
                "duration_ratio": len(s) / len(w), "pauses_stream": ps, "pauses_whole": pw,
                "extra_pauses": extra, "logmel_db": distance(s, w), "logmel_db_level_matched": distance(s, w, True),
                "wer_stream": wer(ref, transcribe(s)), "wer_whole": wer(ref, transcribe(w)),
            })
            r = rows[-1]
            print(f"{text[:44]:44s} dur x{r['duration_ratio']:.3f} extra pauses {len(extra)} "
                  f"log-mel {r['logmel_db']:.2f} dB ({r['logmel_db_level_matched']:.2f} level-matched) "
                  f"WER {r['wer_stream']:.2f} vs {r['wer_whole']:.2f}")
        plays = {"sentence": [play(c, SENTENCES[0]) for _ in range(a.reps)],
                 "paragraph": [play(c, PARAGRAPH) for _ in range(a.reps)]}
    med = lambda v: float(np.median(v))
    summary = {
        "url": a.url, "sentences": len(rows),
        "duration_ratio_worst": max(abs(r["duration_ratio"] - 1) for r in rows),
        "extra_pauses_total": sum(len(r["extra_pauses"]) for r in rows),
        "logmel_db_median": med([r["logmel_db"] for r in rows]),
        "logmel_db_max": max(r["logmel_db"] for r in rows),
        "logmel_db_level_matched_median": med([r["logmel_db_level_matched"] for r in rows]),
        "wer_stream_mean": float(np.mean([r["wer_stream"] for r in rows])),
        "wer_whole_mean": float(np.mean([r["wer_whole"] for r in rows])),
    }
    for k, v in plays.items():
        summary[f"{k}_ttfa_ms_median"] = med([p["ttfa_ms"] for p in v])
        summary[f"{k}_stalls"] = sum(len(p["stalls"]) for p in v)
        summary[f"{k}_stalled_s"] = sum(p["stalled_s"] for p in v)
    print(json.dumps(summary, indent=1))
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    json.dump({"summary": summary, "sentences": rows, "plays": plays}, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
