"""The official OpenAI Python SDK works unchanged against the server."""
import pytest
from openai import OpenAI

MAGIC = {"mp3": (b"\xff", b"ID3"), "opus": (b"OggS",), "aac": (b"\xff",), "flac": (b"fLaC",), "wav": (b"RIFF",), "pcm": (b"",)}


@pytest.fixture(scope="module")
def client(url):
    return OpenAI(base_url=f"{url}/v1", api_key="not-needed")


@pytest.mark.parametrize("fmt", list(MAGIC))
def test_speech_create_every_format(client, fmt):
    r = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello from the SDK.", response_format=fmt)
    data = r.read()
    assert len(data) > 2000
    assert data.startswith(MAGIC[fmt])


@pytest.mark.parametrize("fmt", list(MAGIC))
def test_streaming_response(client, fmt):
    chunks = []
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="nova", input="Streaming works. It arrives in pieces, sentence by sentence.", response_format=fmt
    ) as r:
        assert r.headers["content-type"].startswith("audio/")
        for c in r.iter_bytes(4096):
            chunks.append(c)
    data = b"".join(chunks)
    assert data.startswith(MAGIC[fmt]) and len(data) > 4000


def test_sdk_surfaces_contract_errors(client):
    import openai

    with pytest.raises(openai.BadRequestError) as e:
        client.audio.speech.create(model="tts-1", voice="nobody", input="x")
    assert e.value.body["code"] == "voice_not_found"
    assert e.value.body["param"] == "voice"
    models = client.models.list()
    assert "tts-1" in [m.id for m in models.data]
