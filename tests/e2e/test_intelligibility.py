"""Round trip: synthesize, transcribe with PocketSphinx, bound the word error rate.

Numbers, money and dates go through normalization; the transcript must contain the
spoken forms, which catches misread numbers and garbage audio.
"""
import pytest

from conftest import transcribe, wav_to_float, wer

CASES = [
    # (input, what a listener should hear, words that must be recognized)
    ("The weather is nice today.", "the weather is nice today", ["weather", "today"]),
    ("Please call me tomorrow morning.", "please call me tomorrow morning", ["call", "tomorrow", "morning"]),
    ("I have 3 apples and 12 oranges.", "i have three apples and twelve oranges", ["three", "twelve"]),
    ("The ticket costs $25.", "the ticket costs twenty five dollars", ["twenty", "five", "dollars"]),
    ("We met on March 3rd, 2021.", "we met on march third twenty twenty one", ["march", "third", "twenty"]),
    ("It is 50% off.", "it is fifty percent off", ["fifty", "percent"]),
]


@pytest.fixture(scope="module")
def results(http):
    out = []
    for text, spoken, must in CASES:
        r = http.post("/v1/audio/speech", json={"input": text, "response_format": "wav", "stream": False, "voice": "af_heart"})
        assert r.status_code == 200, r.text
        hyp = transcribe(wav_to_float(r.content))
        out.append((text, spoken, must, hyp))
    return out


def test_word_error_rate_is_bounded(results):
    total_err = sum(wer(spoken, hyp) * len(spoken.split()) for _, spoken, _, hyp in results)
    total_words = sum(len(spoken.split()) for _, spoken, _, _ in results)
    rate = total_err / total_words
    report = "\n".join(f"{t!r} -> {h!r}" for t, _, _, h in results)
    assert rate <= 0.15, f"WER {rate:.2f}\n{report}"


@pytest.mark.parametrize("i", range(len(CASES)))
def test_key_words_come_back(results, i):
    text, _, must, hyp = results[i]
    heard = set(hyp.lower().split())
    missing = [w for w in must if w not in heard]
    # PocketSphinx may miss the odd word; two missing key words fail the case.
    assert len(missing) <= 1, f"{text!r} -> {hyp!r}, missing {missing}"


# Names misaki does not know but PocketSphinx's dictionary does: before the
# out-of-vocabulary fallback they were silent, so none could be recognized.
NAMES = [
    ("Nguyen called Tanaka about the Porsche.", ["nguyen", "tanaka", "porsche"]),
    ("Gonzalez and Kowalski drive a Volvo.", ["gonzalez", "kowalski", "volvo"]),
    ("Yamamoto listens to Spotify in Hyundai cars.", ["yamamoto", "spotify", "hyundai"]),
    ("Rodriguez bought a Subaru from Fernandez.", ["rodriguez", "subaru", "fernandez"]),
    ("Hernandez works at Qualcomm with Nakamura.", ["hernandez", "qualcomm", "nakamura"]),
    ("Ivanov met Dvorak and Siobhan in Gdansk.", ["ivanov", "dvorak", "siobhan", "gdansk"]),
]


def test_unknown_names_are_spoken_and_recognized(http):
    heard, total, report = 0, 0, []
    for text, names in NAMES:
        p = http.post("/dev/phonemize", json={"text": text}).json()
        assert "❓" not in p["phonemes"], p
        sources = {w["text"]: w["source"] for w in p["words"]}
        assert all(sources.get(n.capitalize()) != "lexicon" for n in names[:1]), sources
        r = http.post("/v1/audio/speech", json={"input": text, "response_format": "wav", "stream": False, "voice": "af_heart"})
        assert r.status_code == 200, r.text
        hyp = transcribe(wav_to_float(r.content))
        got = set(hyp.lower().split())
        heard += sum(n in got for n in names)
        total += len(names)
        report.append(f"{text!r} -> {hyp!r}")
    # Measured on the 2-core machine: 13 of 19. Half is the floor.
    assert heard * 2 >= total, f"{heard}/{total} names recognized\n" + "\n".join(report)
