/**
 * The dashboard: polls /dashboard/data every 2 s (only points newer than the last one it has), keeps
 * the last 15 minutes of points, and renders the tiles, charts and tables. Asks for the API key when
 * the server answers 401. The model selector picks whose numbers are shown (the whole server, or one
 * served model); the choice is kept in the URL (`?model=`), so a link opens the same view.
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
/** Counts polls: a poll that a newer one replaced (the model was changed meanwhile) drops its answer. */
let pollRun = 0;
/**
 * The model shown ('' for all models; until the first answer, whatever `?model=` says), and the served models
 * as the last answer listed them.
 */
let selected = new URLSearchParams(location.search).get('model') ?? '';
let models = [];
const view = createCharts();
const playground = setupPlayground();
window.qwenDashboard = { charts: view.charts, points: () => points }; // for a look from the console

const KINDS = { generate: 'text generation', embed: 'embeddings' };

/** The selector's options: "All models", then each served model with what it is for, kept in place as they change. */
function fillModels(list) {
  const picker = $('model-select');
  const wanted = [['', 'All models'], ...list.map((m) => [m.id, `${m.id} · ${KINDS[m.kind] ?? 'loading'}`])];
  // Before the first answer the model in the URL is offered as it is, so the selector shows it at once.
  if (list.length === 0 && selected) wanted.push([selected, selected]);
  wanted.forEach(([value, label], i) => {
    let option = picker.options[i];
    if (!option || option.value !== value) {
      option = new Option(label, value);
      picker.add(option, i);
    }
    if (option.text !== label) option.text = label;
  });
  while (picker.options.length > wanted.length) picker.remove(wanted.length);
  if (picker.value !== selected) picker.value = selected;
}

/** Keeps the model shown in the page's URL (none for all models), so a link or a reload opens the same view. */
function keepInUrl(model) {
  selected = model;
  const url = new URL(location.href);
  if (model) url.searchParams.set('model', model);
  else url.searchParams.delete('model');
  if (url.href !== location.href) window.history.replaceState(null, '', url);
}

/** Shows `model` ('' for all): the kept points are another scope's, so they start over. */
function show(model) {
  keepInUrl(model);
  fillModels(models);
  playground.target(models, selected);
  points = [];
  view.update(points);
  void poll();
}

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
    if (cls === 'model') td.title = text;
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
  set('version', `qwen-serve ${data.version}`);
  // Series without a model label read the same for every model: said so while one is selected.
  for (const dt of document.querySelectorAll('dt[data-server-wide]')) {
    dt.dataset.label ??= dt.textContent;
    const label = data.model === null ? dt.dataset.label : `${dt.dataset.label} · all models`;
    if (dt.textContent !== label) dt.textContent = label;
  }
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
  // Nothing drafted in the window (speculative decoding off, or no draft found): no rate to speak of.
  const drafting = typeof c?.draftAcceptanceRatio === 'number';
  set('v-draft-acceptance', drafting ? percent(c.draftAcceptanceRatio) : DASH);
  set('v-draft-tps', drafting ? rate(c.draftTokensPerSecond) : DASH);
  set('v-accepted-tps', drafting ? rate(c.acceptedTokensPerSecond) : DASH);

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
      [w.model, 'model'],
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
  const run = ++pollRun;
  const since = points.at(-1)?.t ?? 0;
  const query = new URLSearchParams({ since: String(since) });
  if (selected) query.set('model', selected);
  try {
    const res = await fetch(`/dashboard/data?${query}`, { headers: authHeaders(), cache: 'no-store' });
    if (run !== pollRun) return;
    if (res.status === 401) return askForKey(getKey() ? 'The server refused this key.' : '');
    if (res.status === 400 && selected) {
      // A link naming a model this server does not serve (any longer): show the whole server instead.
      console.warn(`dashboard: the server does not serve the model '${selected}'; showing all models`);
      return show('');
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const data = await res.json();
    if (run !== pollRun) return;
    // `?model=all` (or empty) means the whole server, unless a model has that id: the answer says which.
    if (data.model === null && selected) keepInUrl('');
    const cutoff = (data.sampledAt ?? Date.now()) - data.historySeconds * 1000;
    points = points.concat(data.history).filter((p) => p.t > cutoff);
    models = data.models;
    fillModels(models);
    playground.target(models, selected);
    render(data);
    view.update(points);
    setStatus('live', data.sampledAt ? `Live · ${clock(data.sampledAt)}` : 'Live · waiting for a sample');
    $('forget-key').hidden = !getKey();
  } catch (err) {
    if (run !== pollRun) return;
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
$('model-select').addEventListener('change', (e) => show(e.target.value));

fillModels(models);
playground.target(models, selected);
void poll();
