/**
 * The dashboard: polls /dashboard/data every 2 s (only points newer than the last one it has), keeps
 * the last 15 minutes of points, and renders the tiles, charts and tables. Asks for the API key when
 * the server answers 401.
 */
import { authHeaders, getKey, setKey } from './auth.js';
import { createCharts } from './charts.js';
import { DASH, bytes, clock, integer, percent, rate, seconds } from './format.js';
import { setupPlayground } from './playground.js';

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);
const OUTCOMES = [
  ['finished', 'stop', 'finished: stop'],
  ['finished', 'length', 'finished: length'],
  ['finished', 'abort', 'aborted'],
  ['finished', 'error', 'failed: error'],
  ['finished', 'sibling_failed', 'stopped: sibling failed'],
  ['rejected', 'queue_full', 'refused: queue full'],
  ['rejected', 'timeout', 'refused: timeout'],
  ['rejected', 'invalid', 'refused: invalid'],
  ['rejected', 'unauthorized', 'refused: unauthorized'],
];

let points = [];
let timer;
const view = createCharts();
window.qwenDashboard = { charts: view.charts, points: () => points }; // for a look from the console

function setStatus(state, text) {
  const el = $('status');
  el.dataset.state = state;
  el.textContent = text;
}

function set(id, text) {
  const el = $(id);
  if (el.textContent !== text) el.textContent = text;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const [text, cls] of cells) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.append(td);
  }
  return tr;
}

/** Replaces a table body only when its text changes, keeping the same number of rows. */
function fillTable(id, rows) {
  const body = $(id);
  const next = rows.map(row);
  if (body.textContent === next.map((r) => r.textContent).join('')) return;
  body.replaceChildren(...next);
}

function render(data) {
  const c = data.current;
  set('model', `model ${data.model}`);
  set('version', `· qwen-serve ${data.version}`);
  set('v-rps', rate(c?.requestsPerSecond));
  set('v-tps', rate(c?.generationTokensPerSecond));
  set('v-latency-p50', seconds(c?.latencyP50));
  set('v-latency-p95', seconds(c?.latencyP95));
  set('v-ttft-p50', seconds(c?.ttftP50));
  set('v-ttft-p95', seconds(c?.ttftP95));
  set('v-running', c ? `${c.running} / ${c.capacity}` : DASH);
  set('v-waiting', c ? integer(c.waiting) : DASH);
  set('v-kv', percent(c?.kvCacheUsage));
  set('v-errors', rate(c?.errorsPerSecond));
  set('v-requests', integer(data.totals?.requests));
  set('v-tokens', integer(data.totals?.generationTokens));

  fillTable(
    'outcomes',
    OUTCOMES.map(([group, key, label]) => [
      [label],
      [integer(data.window?.[group][key] ?? 0), 'num'],
      [integer(data.totals?.[group][key]), 'num'],
    ]),
  );
  fillTable(
    'workers',
    data.workers.list.map((w) => [
      [String(w.slot)],
      [w.state, `state-${w.state}`],
      [percent(w.kvCacheUsage), 'num'],
      [rate(w.generationTokensPerSecond), 'num'],
    ]),
  );
  set('workers-note', `${data.workers.ready} of ${data.workers.total} ready · ${integer(data.totals?.workerRestarts ?? 0)} restarts`);
  $('gpu-table').hidden = data.gpus.length === 0;
  $('gpu-none').hidden = data.gpus.length > 0;
  fillTable(
    'gpus',
    data.gpus.map((g) => [
      [`${g.device}${g.name ? ` ${g.name}` : ''}`],
      [`${bytes(g.memoryUsedBytes)} / ${bytes(g.memoryTotalBytes)}`, 'num'],
      [percent(g.utilizationRatio), 'num'],
    ]),
  );
}

async function poll() {
  clearTimeout(timer);
  const since = points.at(-1)?.t ?? 0;
  try {
    const res = await fetch(`/dashboard/data?since=${since}`, { headers: authHeaders(), cache: 'no-store' });
    if (res.status === 401) return askForKey(getKey() ? 'The server refused this key.' : '');
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const data = await res.json();
    const cutoff = (data.sampledAt ?? Date.now()) - data.historySeconds * 1000;
    points = points.concat(data.history).filter((p) => p.t > cutoff);
    render(data);
    view.update(points);
    setStatus('live', data.sampledAt ? `Live · ${clock(data.sampledAt)}` : 'Live · waiting for a sample');
    $('forget-key').hidden = !getKey();
  } catch (err) {
    setStatus('error', `Unreachable · retrying`);
    console.warn('dashboard poll failed:', err);
  }
  timer = setTimeout(poll, POLL_MS);
}

function askForKey(message) {
  clearTimeout(timer);
  setStatus('key', 'API key required');
  $('key-form').hidden = false;
  $('key-error').textContent = message;
  $('key-input').focus();
}

$('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  setKey($('key-input').value.trim());
  $('key-input').value = '';
  $('key-form').hidden = true;
  void poll();
});
$('forget-key').addEventListener('click', () => {
  setKey(null);
  $('forget-key').hidden = true;
  askForKey('');
});
window.addEventListener('qwen:unauthorized', (e) => askForKey(e.detail ?? ''));

setupPlayground();
void poll();
