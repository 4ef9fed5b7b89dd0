//! `kokoro-backend say --server URL`: the same command against any running
//! deployment (this backend or the edge in front of it), over HTTP(S) with
//! `reqwest`, instead of loading the model here.
//!
//! It asks for the answer as server-sent events with word timestamps
//! (`stream_format: sse`, `timestamps: word`), so that the progress bar shows how
//! much of the text has been spoken, not only how many bytes came; each
//! `speech.audio.delta` is written to the file as it arrives. The API key comes
//! from `KOKORO_API_KEY` (or `OPENAI_API_KEY`), never from the command line, where
//! other users could read it. An error answer is shown as the API's message; a
//! stream that ends without `speech.audio.done` is an error. The audio goes to
//! `OUTPUT.part` and is renamed at the end, so an error leaves no partial file and
//! keeps the one that was there.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::Value;
use std::io::Write;
use std::path::Path;

/// The environment variables the API key is read from, in order.
pub const KEY_VARS: [&str; 2] = ["KOKORO_API_KEY", "OPENAI_API_KEY"];

/// What one server-sent event says.
#[derive(Debug, PartialEq)]
pub enum Sse {
    /// Encoded audio bytes to append.
    Audio(Vec<u8>),
    /// The end of the input's text spoken so far (a word's `char_end`).
    Spoken(usize),
    Done,
}

/// Splits a byte stream into server-sent events (`data:` lines, blank-line
/// separated), across chunk boundaries.
#[derive(Default)]
pub struct SseReader {
    buf: Vec<u8>,
}

impl SseReader {
    /// Take `bytes`; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Sse>> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = find(&self.buf, b"\n\n") {
            let event: Vec<u8> = self.buf.drain(..end + 2).collect();
            let mut data = String::new();
            for line in event.split(|&b| b == b'\n') {
                if let Some(d) = line.strip_prefix(b"data:") {
                    let d = std::str::from_utf8(d).context("an event is not UTF-8")?;
                    data.push_str(d.strip_prefix(' ').unwrap_or(d));
                }
            }
            if !data.is_empty() {
                out.extend(parse_event(&data)?);
            }
        }
        Ok(out)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_event(data: &str) -> Result<Option<Sse>> {
    let v: Value = serde_json::from_str(data).context("an event is not JSON")?;
    Ok(match v["type"].as_str() {
        Some("speech.audio.delta") => {
            let b64 = v["audio"]
                .as_str()
                .ok_or_else(|| anyhow!("a delta has no audio"))?;
            Some(Sse::Audio(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .context("a delta's audio is not base64")?,
            ))
        }
        Some("speech.audio.timestamps") => v["words"]
            .as_array()
            .and_then(|w| w.iter().filter_map(|w| w["char_end"].as_u64()).max())
            .map(|e| Sse::Spoken(usize::try_from(e).unwrap_or(usize::MAX))),
        Some("speech.audio.done") => Some(Sse::Done),
        _ => None,
    })
}

/// The message of an error answer in the contract's shape, else its status.
pub fn error_message(status: u16, body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .map_or_else(
            || format!("the server answered {status}"),
            |m| format!("{m} ({status})"),
        )
}

/// The speech endpoint under `server` (a base URL, with or without `/v1`).
pub fn endpoint(server: &str) -> Result<reqwest::Url> {
    let base = server.trim_end_matches('/');
    let base = base.strip_suffix("/v1").unwrap_or(base);
    let url = reqwest::Url::parse(&format!("{base}/v1/audio/speech"))
        .with_context(|| format!("--server {server} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--server must be an http:// or https:// URL");
    }
    Ok(url)
}

fn bar(spoken: usize, total: usize) {
    let pct = (spoken * 100 / total.max(1)).min(100);
    eprint!(
        "\r[{:<30}] {pct:>3}% of the text spoken",
        "#".repeat(pct * 30 / 100)
    );
}

/// The API key from the environment ([`KEY_VARS`]), if any.
pub fn key_from_env() -> Option<String> {
    KEY_VARS
        .iter()
        .find_map(|k| std::env::var(k).ok())
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
}

/// Synthesize `body` (a speech request: input, voice, speed, response_format) on
/// `server` into `output`, presenting `key`; returns the bytes written.
pub async fn say(server: &str, mut body: Value, output: &Path, key: Option<&str>) -> Result<u64> {
    let url = endpoint(server)?;
    let total = body["input"].as_str().map_or(0, |t| t.chars().count());
    body["stream"] = Value::from(true);
    body["stream_format"] = Value::from("sse");
    body["timestamps"] = Value::from("word");
    // TLS through rustls with ring (already in the tree for the edge host).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .context("cannot build the HTTP client")?;
    let mut req = client.post(url.clone()).json(&body);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach {}", url.origin().ascii_serialization()))?;
    let status = resp.status();
    if !status.is_success() {
        let bytes = resp.bytes().await.unwrap_or_default();
        bail!("{}", error_message(status.as_u16(), &bytes));
    }
    // Written beside the output and renamed at the end: an error never leaves a
    // partial file, nor destroys one that was there.
    let mut part = output.as_os_str().to_owned();
    part.push(".part");
    let part = std::path::PathBuf::from(part);
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&part)
            .with_context(|| format!("cannot create {}", part.display()))?,
    );
    let result = stream(resp, &mut out, total).await;
    let flushed = out.flush();
    drop(out);
    let done = result
        .and_then(|n| flushed.map(|()| n).map_err(Into::into))
        .and_then(|n| {
            std::fs::rename(&part, output)
                .with_context(|| format!("cannot write {}", output.display()))
                .map(|()| n)
        });
    if done.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    done
}

async fn stream(resp: reqwest::Response, out: &mut impl Write, total: usize) -> Result<u64> {
    let mut sse = SseReader::default();
    let mut body = resp.bytes_stream();
    let (mut written, mut spoken) = (0u64, 0usize);
    bar(0, total);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("the server ended the stream early")?;
        for ev in sse.push(&chunk)? {
            match ev {
                Sse::Audio(bytes) => {
                    out.write_all(&bytes)?;
                    written += bytes.len() as u64;
                }
                Sse::Spoken(end) => {
                    spoken = spoken.max(end);
                    bar(spoken, total);
                }
                Sse::Done => {
                    bar(total, total);
                    return Ok(written);
                }
            }
        }
    }
    bail!("the server ended the stream before the end of the audio")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_across_chunk_boundaries() {
        let mut r = SseReader::default();
        let delta = format!(
            "data: {{\"type\":\"speech.audio.delta\",\"audio\":\"{}\"}}\n\n",
            base64::engine::general_purpose::STANDARD.encode(b"RIFF")
        );
        let stamps = "data: {\"type\":\"speech.audio.timestamps\",\"words\":[{\"word\":\"a\",\"char_end\":3},{\"word\":\"b\",\"char_end\":9}]}\n\n";
        let done = "data: {\"type\":\"speech.audio.done\",\"usage\":{}}\n\n";
        let all = format!("{stamps}{delta}: a comment\n\n{done}");
        let mut got = Vec::new();
        for piece in all.as_bytes().chunks(7) {
            got.extend(r.push(piece).unwrap());
        }
        assert_eq!(
            got,
            [Sse::Spoken(9), Sse::Audio(b"RIFF".to_vec()), Sse::Done]
        );
        assert!(r.push(b"data: not json\n\n").is_err());
    }

    #[test]
    fn errors_show_the_apis_message() {
        let body = br#"{"error":{"message":"Voice 'x' is not installed.","type":"invalid_request_error","param":"voice","code":"voice_not_found"}}"#;
        assert_eq!(
            error_message(400, body),
            "Voice 'x' is not installed. (400)"
        );
        assert_eq!(error_message(502, b"<html>"), "the server answered 502");
    }

    #[test]
    fn the_endpoint_is_under_the_base_url() {
        let e = |s: &str| endpoint(s).map(|u| u.to_string());
        assert_eq!(
            e("http://127.0.0.1:8880").unwrap(),
            "http://127.0.0.1:8880/v1/audio/speech"
        );
        assert_eq!(
            e("https://tts.example/v1/").unwrap(),
            "https://tts.example/v1/audio/speech"
        );
        assert!(e("ftp://x").is_err() && e("not a url").is_err());
    }
}
