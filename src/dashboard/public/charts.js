/**
 * The history charts (uPlot, loaded from /dashboard/assets/uPlot.iife.min.js). Each chart keeps a fixed
 * height and follows its container's width; the legend shows labels only, so nothing moves on update.
 */
import { seconds } from './format.js';

const PLOT_HEIGHT = 180;
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
const colors = () => ['--c1', '--c2', '--c3', '--c4', '--c5'].map(css);
/** Non-negative scales start at 0 and stay visible when everything is 0. */
const fromZero = (fallback) => (_u, _min, max) => [0, max > 0 ? max * 1.1 : fallback];

function axis(extra = {}) {
  const grid = css('--grid');
  return { stroke: css('--muted'), grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, ...extra };
}

function chart(el, series, scales, axes) {
  const u = new window.uPlot(
    {
      width: Math.max(200, el.clientWidth),
      height: PLOT_HEIGHT,
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, ...scales },
      series: [{}, ...series],
      axes: [axis(), ...axes],
    },
    [[], ...series.map(() => [])],
    el,
  );
  new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height: PLOT_HEIGHT })).observe(el);
  return u;
}

const line = (label, stroke, scale, dash) => ({ label, stroke, scale, width: 2, dash, spanGaps: false });
const pct = (v) => (v === null || v === undefined ? null : v * 100);

export function createCharts() {
  const [c1, c2, c3] = colors();
  const secondsAxis = (scale) => axis({ scale, size: 64, values: (_u, splits) => splits.map((s) => (s === 0 ? '0' : seconds(s))) });
  const charts = {
    throughput: {
      u: chart(
        document.getElementById('chart-throughput'),
        [line('requests/s', c1, 'rps'), line('tokens/s', c2, 'tps', [6, 4])],
        { rps: { range: fromZero(1) }, tps: { range: fromZero(10) } },
        [axis({ scale: 'rps', label: 'requests/s' }), axis({ scale: 'tps', side: 1, label: 'tokens/s', grid: { show: false } })],
      ),
      columns: [(p) => p.requestsPerSecond, (p) => p.generationTokensPerSecond],
    },
    latency: {
      u: chart(
        document.getElementById('chart-latency'),
        [
          line('latency p50', c1, 's'),
          line('latency p95', c1, 's', [6, 4]),
          line('first token p50', c2, 's'),
          line('first token p95', c2, 's', [6, 4]),
        ],
        { s: { range: fromZero(0.1) } },
        [secondsAxis('s')],
      ),
      columns: [(p) => p.latencyP50, (p) => p.latencyP95, (p) => p.ttftP50, (p) => p.ttftP95],
    },
    batching: {
      u: chart(
        document.getElementById('chart-batching'),
        [line('tokens/step', c1, 'n'), line('sequences/step', c2, 'n', [6, 4]), line('step time', c3, 's', [2, 3])],
        { n: { range: fromZero(1) }, s: { range: fromZero(0.1) } },
        [axis({ scale: 'n', label: 'per decode step' }), { ...secondsAxis('s'), side: 1, grid: { show: false } }],
      ),
      columns: [(p) => p.tokensPerStep, (p) => p.sequencesPerStep, (p) => p.stepSeconds],
    },
    speculative: {
      u: chart(
        document.getElementById('chart-speculative'),
        [line('draft tokens/s', c1, 'tps'), line('accepted tokens/s', c2, 'tps', [6, 4]), line('acceptance %', c3, '%', [2, 3])],
        { tps: { range: fromZero(10) }, '%': { range: [0, 100] } },
        [axis({ scale: 'tps', label: 'tokens/s' }), axis({ scale: '%', side: 1, label: '%', grid: { show: false } })],
      ),
      columns: [(p) => p.draftTokensPerSecond, (p) => p.acceptedTokensPerSecond, (p) => pct(p.draftAcceptanceRatio)],
    },
    load: {
      u: chart(
        document.getElementById('chart-load'),
        [line('running', c1, 'n'), line('queued', c2, 'n', [6, 4]), line('KV cache %', c3, '%', [2, 3])],
        { n: { range: fromZero(1) }, '%': { range: [0, 100] } },
        [axis({ scale: 'n', label: 'requests' }), axis({ scale: '%', side: 1, label: '%', grid: { show: false } })],
      ),
      columns: [(p) => p.running, (p) => p.waiting, (p) => pct(p.kvCacheUsage)],
    },
  };
  let gpuDevices = '';

  /** The GPU chart exists once devices are known; it is rebuilt if the device list changes. */
  function gpuChart(devices) {
    const key = devices.join(',');
    if (key === gpuDevices) return;
    gpuDevices = key;
    charts.gpu?.u.destroy();
    delete charts.gpu;
    const figure = document.getElementById('gpu-figure');
    figure.hidden = devices.length === 0;
    if (devices.length === 0) return;
    const palette = colors();
    const series = devices.flatMap((d, i) => [
      line(`${d} busy %`, palette[i % palette.length], '%'),
      line(`${d} memory %`, palette[i % palette.length], '%', [6, 4]),
    ]);
    const el = document.getElementById('chart-gpu');
    el.replaceChildren();
    charts.gpu = {
      u: chart(el, series, { '%': { range: [0, 100] } }, [axis({ scale: '%', label: '%' })]),
      columns: devices.flatMap((d) => [
        (p) => pct(p.gpus.find((g) => g.device === d)?.utilizationRatio),
        (p) => {
          const g = p.gpus.find((x) => x.device === d);
          return g && g.memoryTotalBytes ? (100 * g.memoryUsedBytes) / g.memoryTotalBytes : null;
        },
      ]),
    };
  }

  return {
    charts,
    /** Redraws every chart from the kept points (oldest first). */
    update(points) {
      const last = points.at(-1);
      gpuChart(last ? last.gpus.map((g) => g.device) : []);
      const xs = points.map((p) => p.t / 1000);
      for (const c of Object.values(charts)) c.u.setData([xs, ...c.columns.map((f) => points.map((p) => f(p) ?? null))]);
    },
  };
}
