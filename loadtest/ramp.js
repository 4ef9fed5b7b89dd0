// Concurrency ramp (and the soak, with DURATION): VUS concurrent streams (1, 2, 4, 8: one k6 run per level, so
// `cargo xtask loadtest` divides audio seconds by that run's wall time), each
// streaming ITERATIONS sentences from the backend. Reports aggregate audio-seconds
// per second and TTFA under load; no threshold here but zero failures.
import http from 'k6/http';
import { check } from 'k6';
import { Trend, Counter } from 'k6/metrics';

const BACKEND = __ENV.BACKEND_URL || 'http://127.0.0.1:8880';
if (!/^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(BACKEND)) {
  throw new Error(`loopback targets only: ${BACKEND}`);
}
const VUS = Number(__ENV.VUS || 1);
const ttfa = new Trend('ttfa_ms', true);
const audioSeconds = new Counter('audio_seconds');

const TEXT = 'Concurrency costs latency; the queue keeps it fair and bounded for every stream.';

export const options = {
  // DURATION (soak): VUS streams back to back for that long; otherwise ITERATIONS each.
  scenarios: Object.assign({
    ramp: __ENV.DURATION
      ? { executor: 'constant-vus', vus: VUS, duration: __ENV.DURATION, gracefulStop: '60s' }
      : { executor: 'per-vu-iterations', vus: VUS, iterations: Number(__ENV.ITERATIONS || 2), maxDuration: '120s' },
  }, __ENV.DURATION && __ENV.ABUSE ? {
    // The soak's third client: costly and malformed requests, each of which must get
    // its error (and leave the valid streams unharmed).
    abuse: { executor: 'constant-vus', vus: 1, duration: __ENV.DURATION, exec: 'abuse', gracefulStop: '60s' },
  } : {}),
  thresholds: { http_req_failed: ['rate==0'], checks: ['rate==1'] },
  summaryTrendStats: ['min', 'med', 'avg', 'p(90)', 'p(95)', 'max', 'count'],
};

export default function () {
  const r = http.post(`${BACKEND}/v1/audio/speech`,
    JSON.stringify({ input: TEXT, voice: 'af_heart', response_format: 'pcm' }),
    { headers: { 'Content-Type': 'application/json' }, timeout: '120s' });
  check(r, { 'stream 200': (x) => x.status === 200 && x.body && x.body.length > 48000 });
  ttfa.add(r.timings.waiting);
  audioSeconds.add((r.body ? r.body.length : 0) / 48000);
}

const JSON_HEADERS = { headers: { 'Content-Type': 'application/json' }, timeout: '120s' };
const ABUSE = [
  // [what, method, path, body, expected status]
  ['pauses', 'POST', '/v1/audio/speech', JSON.stringify({ input: 'Hi. ' + '[pause:10s]'.repeat(372), stream: false, response_format: 'wav' }), 413],
  ['digits', 'POST', '/v1/audio/speech', JSON.stringify({ input: '1234567890 '.repeat(372) }), 413],
  ['money', 'POST', '/v1/audio/speech', JSON.stringify({ input: '$9,999,999.99 '.repeat(290), stream: false }), 413],
  ['big body', 'POST', '/v1/audio/speech', JSON.stringify({ input: 'x'.repeat(70000) }), 413],
  ['not json', 'POST', '/v1/audio/speech', '{"input": ', 400],
  ['bad speed', 'POST', '/v1/audio/speech', JSON.stringify({ input: 'a', speed: 0.1 }), 400],
  ['dev route', 'POST', '/dev/phonemize', JSON.stringify({ text: 'aA'.repeat(2048) }), 404],
  ['odd method', 'X'.repeat(8192), '/health', null, 405],
];

export function abuse() {
  for (const [what, method, path, body, want] of ABUSE) {
    const params = Object.assign({ responseCallback: http.expectedStatuses(want), tags: { abuse: what } }, JSON_HEADERS);
    const r = http.request(method, `${BACKEND}${path}`, body, params);
    check(r, { [`abuse ${what}: ${want}`]: (x) => x.status === want });
  }
}
