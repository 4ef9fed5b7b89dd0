// The k6 perf gate: time to first audio, non-streaming latency, mixed formats and
// cache hits, against the backend and the edge on loopback. Budgets arrive as
// environment variables from `cargo xtask loadtest`, which reads them from
// .caws/working-spec.yaml; k6 exits non-zero when a threshold fails.
//
// TTFA: the backend sends its response head only with the first audio, so
// `timings.waiting` (time to the first response byte) is the time to first audio.
import http from 'k6/http';
import { check } from 'k6';
import { Trend, Counter } from 'k6/metrics';

const BACKEND = __ENV.BACKEND_URL || 'http://127.0.0.1:8880';
const EDGE = __ENV.EDGE_URL || 'http://127.0.0.1:3000';
const TTFA_MS = Number(__ENV.TTFA_P95_MS || 500);
const API_MS = Number(__ENV.API_P95_MS || 1000);
const HIT_MS = Number(__ENV.CACHE_HIT_P95_MS || 50);
const N = Number(__ENV.ITERATIONS || 20);

for (const u of [BACKEND, EDGE]) {
  if (!/^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(u)) {
    throw new Error(`loopback targets only: ${u}`);
  }
}

const ttfa = new Trend('ttfa_ms', true);
const apiShort = new Trend('api_short_ms', true);
const apiParagraph = new Trend('api_paragraph_ms', true);
const paragraphRtf = new Trend('paragraph_rtf');
const cacheHit = new Trend('cache_hit_ms', true);
const audioSeconds = new Counter('audio_seconds');

const SENTENCES = [
  'The quick brown fox jumps over the lazy dog.',
  'Please call me back when you get this message.',
  'Your package will arrive on Tuesday, March 3rd.',
  'We measured the time to first audio on two cores.',
];
const SHORT = ['Your order has shipped.', 'Good morning.', 'See you at noon.', 'Thanks for calling.'];
const PARAGRAPH =
  'Speech synthesis at the edge keeps the audio close to the listener. The edge validates ' +
  'the request, normalizes the text and answers from its cache when it can. Otherwise the ' +
  'native backend phonemizes the text, runs the model chunk by chunk and streams the audio.';
const FORMATS = ['mp3', 'opus', 'aac', 'flac', 'wav', 'pcm'];
const CTYPES = {
  mp3: 'audio/mpeg', opus: 'audio/ogg; codecs=opus', aac: 'audio/aac',
  flac: 'audio/flac', wav: 'audio/wav', pcm: 'audio/pcm; rate=24000; channels=1; encoding=s16le',
};
const JSON_HEADERS = { headers: { 'Content-Type': 'application/json' }, timeout: '60s' };

function post(base, body, tags) {
  return http.post(`${base}/v1/audio/speech`, JSON.stringify(body), Object.assign({ tags }, JSON_HEADERS));
}

// One scenario per k6 run (SCENARIO), so runs never overlap on the two cores and
// each takes only as long as its requests; `cargo xtask loadtest` runs them in turn
// and checks that the gated metric has samples.
const SCENARIOS = {
  ttfa: { exec: 'ttfaScenario', iterations: N, threshold: ['ttfa_ms', `p(95)<=${TTFA_MS}`] },
  short: { exec: 'shortScenario', iterations: N, threshold: ['api_short_ms', `p(95)<=${API_MS}`] },
  paragraph: { exec: 'paragraphScenario', iterations: 2, threshold: null },
  formats: { exec: 'formatsScenario', iterations: FORMATS.length, threshold: null },
  cache_hit: { exec: 'cacheHitScenario', iterations: 5 * N, threshold: ['cache_hit_ms', `p(95)<=${HIT_MS}`] },
};
const NAME = __ENV.SCENARIO || 'ttfa';
const CHOSEN = SCENARIOS[NAME];
if (!CHOSEN) throw new Error(`unknown SCENARIO ${NAME}`);

const thresholds = { http_req_failed: ['rate==0'], checks: ['rate==1'] };
if (CHOSEN.threshold) thresholds[CHOSEN.threshold[0]] = [CHOSEN.threshold[1]];

export const options = {
  scenarios: {
    [NAME]: { executor: 'per-vu-iterations', vus: 1, iterations: CHOSEN.iterations, maxDuration: '180s', exec: CHOSEN.exec },
  },
  thresholds,
  summaryTrendStats: ['min', 'med', 'avg', 'p(90)', 'p(95)', 'max', 'count'],
};

export function ttfaScenario() {
  const text = SENTENCES[__ITER % SENTENCES.length];
  const r = post(BACKEND, { input: text, voice: 'af_heart', response_format: 'wav' }, { scenario: 'ttfa' });
  check(r, { 'ttfa 200 wav': (x) => x.status === 200 && x.body && x.body.length > 44 });
  ttfa.add(r.timings.waiting);
  audioSeconds.add((r.body ? r.body.length - 44 : 0) / 48000);
}

export function shortScenario() {
  const text = SHORT[__ITER % SHORT.length];
  const r = post(BACKEND, { input: text, voice: 'af_heart', response_format: 'pcm', stream: false }, { scenario: 'short' });
  check(r, { 'short 200 pcm': (x) => x.status === 200 && x.body && x.body.length > 4800 });
  apiShort.add(r.timings.duration);
}

export function paragraphScenario() {
  const r = post(BACKEND, { input: PARAGRAPH, voice: 'af_heart', response_format: 'pcm', stream: false }, { scenario: 'paragraph' });
  const ok = check(r, { 'paragraph 200 pcm': (x) => x.status === 200 && x.body && x.body.length > 48000 });
  apiParagraph.add(r.timings.duration);
  if (ok) paragraphRtf.add(r.timings.duration / 1000 / (r.body.length / 48000));
}

export function formatsScenario() {
  const f = FORMATS[__ITER % FORMATS.length];
  // Through the edge, with text unique to this run so the cache cannot answer.
  const text = `Format ${f}, run ${Date.now() % 100000}: the edge forwards this request.`;
  const r = post(EDGE, { input: text, voice: 'af_heart', response_format: f }, { scenario: 'formats', format: f });
  check(r, {
    'format 200': (x) => x.status === 200,
    'format content-type': (x) => x.headers['Content-Type'] === CTYPES[f],
    'format body': (x) => x.body && x.body.length > 1000,
  });
}

export function cacheHitScenario() {
  const body = { input: 'A cached greeting from the edge.', voice: 'af_heart', response_format: 'mp3' };
  const r = post(EDGE, body, { scenario: 'cache_hit' });
  check(r, { 'cache 200': (x) => x.status === 200 });
  // The first request fills the cache; every later one must be a hit.
  if (__ITER > 0) {
    check(r, { 'cache hit': (x) => x.headers['X-Cache'] === 'hit' });
    cacheHit.add(r.timings.duration);
  }
}
