"""Word timestamps against PocketSphinx forced alignment, on a running server.

usage: bench_timestamps.py URL [--out FILE]   (the server needs --dev-routes)

For each sentence below (numbers, money, dates, pauses, inline phonemes), asks
/dev/captioned_speech for the audio and its word timestamps, aligns the spoken
words (the server's own G2P words, from /dev/phonemize) to the same audio with
PocketSphinx (`Decoder.set_align_text`), and compares the start and end of every
stamped word that is one plain word with the aligned word it matches (rewrites
such as "$12.99" are one stamp for several spoken words and are not compared;
their neighbours are). Prints and writes the median and p90 absolute error of
starts and ends, and the median signed error (a constant offset would show there).
"""
import argparse
import base64
import json
import os
import re
import sys

import httpx
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
from conftest import align, to16k  # noqa: E402  (the suite's forced alignment)

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me tomorrow morning before nine.",
    "It costs $12.99 at the corner shop.",
    "We met on March 3rd, 2021, at half past two.",
    "The train leaves at 7:45 pm from platform 4.",
    "She ran 5 km in 23 minutes.",
    "Turn left at the second light. [pause:0.5s] Then keep going.",
    "About 45% of the votes were counted by noon.",
    "My number is 555 123 4567, call me later.",
    "He said [tomato](/təmˈɑːtoʊ/) the British way.",
    "The meeting moved to 2024-05-17 at the main office.",
    "Rain is expected tonight, so bring an umbrella.",
    "The museum has a new exhibition about ancient Egypt.",
    "Water boils at 100 degrees at sea level.",
    "A good night of sleep makes a long day much easier.",
    "Thank you for calling, how can I help you today?",
    "Could you send me the report before the meeting?",
    "The children laughed as the puppy chased its tail.",
    "My grandmother kept a garden full of roses and mint.",
    "We will review your application and answer within a week.",
    "The library opens at nine and closes at five.",
    "Three hundred people waited outside in the cold.",
    "The price rose from $4 to $7.50 in a year.",
    "Wait for it. [pause:1s] Now open the door.",
    "In 1999 the bridge was closed for repairs.",
    "Add 2 cups of flour and 1 egg.",
    "The river flows north for about 200 miles.",
    "Our team won the game by 3 points.",
    "Bring your passport, your ticket, and a pen.",
    "The store is closed on Sundays and holidays.",
    "I read [either](/ˈaɪðɚ/) book last summer.",
    "Light travels fast, but sound is much slower.",
]


def plain(w):
    return re.sub(r"[^a-z'-]", "", w.lower())


def q(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--out", default="target/bench-timestamps.json")
    a = ap.parse_args()
    c = httpx.Client(base_url=a.url, timeout=120)
    starts, ends, rows = [], [], []
    for text in SENTENCES:
        v = c.post("/dev/captioned_speech", json={"input": text, "stream": False,
                                                  "response_format": "pcm"}).json()
        spoken = re.sub(r"\[pause:[^\]]*\]", " ", text)
        g = c.post("/dev/phonemize", json={"text": spoken}).json()
        words = [x.strip("'") for w in g["words"] for x in plain(w["text"]).split("-")]
        words = [w for w in words if w]
        al = align(to16k(base64.b64decode(v["audio"])), words)
        if al is None:
            print(f"skipped (a word PocketSphinx does not know): {text}")
            continue
        k, pairs = 0, []
        for t in v["timestamps"]:
            w = plain(t["word"]).strip("'")
            if not w or w != plain(t["word"]).strip("'") or not re.fullmatch(r"[a-z']+", t["word"].lower().strip(".,;:!?\"")):
                continue
            for j in range(k, len(al)):
                if al[j][0].split("(")[0] == w:
                    pairs.append((w, t["start_time"] - al[j][1], t["end_time"] - al[j][2]))
                    k = j + 1
                    break
        starts += [p[1] for p in pairs]
        ends += [p[2] for p in pairs]
        rows.append({"text": text, "compared": len(pairs), "stamps": len(v["timestamps"]),
                     "errors_ms": [(p[0], round(p[1] * 1000), round(p[2] * 1000)) for p in pairs]})
        med = np.median([abs(p[1]) for p in pairs]) * 1000 if pairs else float("nan")
        print(f"{text[:44]:44} {len(pairs):2}/{len(v['timestamps']):2} words, start error median {med:.0f} ms")
    both = [abs(x) for x in starts + ends]
    summary = {
        "sentences": len(rows), "boundaries": len(both),
        "start_abs_ms": {"median": q([abs(x) for x in starts], 0.5) * 1000, "p90": q([abs(x) for x in starts], 0.9) * 1000},
        "end_abs_ms": {"median": q([abs(x) for x in ends], 0.5) * 1000, "p90": q([abs(x) for x in ends], 0.9) * 1000},
        "all_abs_ms": {"median": q(both, 0.5) * 1000, "p90": q(both, 0.9) * 1000},
        "signed_median_ms": {"start": q(starts, 0.5) * 1000, "end": q(ends, 0.5) * 1000},
    }
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    json.dump({"summary": summary, "rows": rows}, open(a.out, "w"), indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
