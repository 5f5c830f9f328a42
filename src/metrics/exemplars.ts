/**
 * Exemplars for the latency histograms: a sampled trace's id beside the histogram bucket its latency fell in,
 * so a dashboard can go from a latency spike to the trace of a request in it.
 *
 * prom-client's own exemplars cannot serve here: /metrics is a registry merged by AggregatorRegistry.aggregate()
 * from JSON snapshots, whose aggregators keep only each series' labels and value (the `exemplar` field of a
 * bucket is dropped), a Histogram with exemplars must live in an OpenMetrics registry, and the first-token and
 * inter-token histograms are observed in worker threads, which never see a trace. So the main thread, which
 * knows each traced request's id and latencies, keeps the exemplars itself and writes them into the merged
 * OpenMetrics text at scrape time.
 *
 * Memory is bounded: per metric and label set (both fixed by the server's configuration, and capped here),
 * one exemplar per bucket. Exemplars are valid only in OpenMetrics: the Prometheus text format gets none.
 */

/** OpenMetrics: the names and values of an exemplar's label set together are at most 128 code points. */
const LABEL_SET_LIMIT = 128;
const TRACE_LABEL = 'trace_id';
/** An exemplar older than this is no longer exposed (Prometheus stored it at an earlier scrape). */
const DEFAULT_MAX_AGE_MS = 10 * 60_000;
/** A guard against a caller that puts unbounded values in labels; the server's own label sets are far fewer. */
const MAX_SERIES = 1024;
/** Exemplars kept per label set before the first scrape has shown the metric's bucket bounds. */
const MAX_PENDING = 64;

interface Exemplar {
  value: number;
  traceId: string;
  atMs: number;
}

interface Series {
  labels: [string, string][];
  /** The latest exemplar of each bucket, by its upper bound (Infinity for +Inf). */
  buckets: Map<number, Exemplar>;
  /** Recorded while the metric's bounds are unknown; put in their buckets at the next annotate(). */
  pending: Exemplar[];
}

/** A `_bucket` sample line without an exemplar: metric name, labels, then value and optional timestamp. */
const BUCKET_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)_bucket\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\} \S+(?: \S+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export class ExemplarStore {
  /** metric → label key → series. */
  private readonly series = new Map<string, Map<string, Series>>();
  /** metric → its bucket upper bounds, ascending, as the latest annotated text had them. */
  private readonly bounds = new Map<string, number[]>();
  private seriesCount = 0;
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  /**
   * @param opts.maxAgeMs exemplars older than this are dropped at the next annotate(); default 10 minutes
   * @param opts.now the clock, in epoch milliseconds (tests inject one)
   */
  constructor(opts: { maxAgeMs?: number; now?: () => number } = {}) {
    this.maxAgeMs = opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Records that a request with trace `traceId` observed `value` (seconds) on histogram `metric` with these
   * labels (e.g. {model:'chat'} or {method:'POST', endpoint:'/v1/chat/completions'}). The exemplar goes to
   * every series of `metric` whose labels include these (a merged series may carry engine, device or worker
   * labels besides). A trace id too long for OpenMetrics' 128-character label set, or a value that is not a
   * finite number, is ignored.
   */
  record(metric: string, labels: Record<string, string>, value: number, traceId: string, atMs: number = this.now()): void {
    if (!Number.isFinite(value) || !Number.isFinite(atMs)) return;
    if ([...TRACE_LABEL, ...traceId].length > LABEL_SET_LIMIT) return;
    let byLabels = this.series.get(metric);
    const key = labelKey(labels);
    let series = byLabels?.get(key);
    if (!series) {
      if (this.seriesCount >= MAX_SERIES) return;
      series = { labels: Object.entries(labels), buckets: new Map(), pending: [] };
      if (!byLabels) this.series.set(metric, (byLabels = new Map<string, Series>()));
      byLabels.set(key, series);
      this.seriesCount++;
    }
    const exemplar = { value, traceId, atMs };
    const bounds = this.bounds.get(metric);
    if (bounds) place(series, bounds, exemplar);
    else if (series.pending.push(exemplar) > MAX_PENDING) series.pending.shift();
  }

  /**
   * OpenMetrics text with the latest exemplar of each bucket appended to its `_bucket` line:
   * ` # {trace_id="…"} value timestamp` (timestamp in seconds). Text that is not OpenMetrics (no `# EOF`)
   * comes back unchanged: the Prometheus text format has no exemplars.
   */
  annotate(openMetricsText: string): string {
    if (this.seriesCount === 0 || !/^# EOF$/m.test(openMetricsText)) return openMetricsText;
    const lines = openMetricsText.split('\n');
    const buckets: { index: number; metric: string; labels: Map<string, string>; le: number }[] = [];
    const bounds = new Map<string, Set<number>>();
    for (let index = 0; index < lines.length; index++) {
      const m = BUCKET_LINE.exec(lines[index]!);
      if (!m || !this.series.has(m[1]!)) continue;
      const labels = parseLabels(m[2]!);
      const le = parseBound(labels.get('le'));
      if (le === undefined) continue;
      labels.delete('le');
      buckets.push({ index, metric: m[1]!, labels, le });
      let set = bounds.get(m[1]!);
      if (!set) bounds.set(m[1]!, (set = new Set()));
      set.add(le);
    }
    for (const [metric, set] of bounds) {
      const ascending = [...set].sort((a, b) => a - b);
      this.learnBounds(metric, ascending);
    }
    this.dropOlderThan(this.now() - this.maxAgeMs);
    for (const b of buckets) {
      let latest: Exemplar | undefined;
      for (const series of this.series.get(b.metric)?.values() ?? []) {
        if (!series.labels.every(([k, v]) => b.labels.get(k) === v)) continue;
        const e = series.buckets.get(b.le);
        if (e && (!latest || e.atMs > latest.atMs)) latest = e;
      }
      if (latest) lines[b.index] += ` # {${TRACE_LABEL}="${escape(latest.traceId)}"} ${latest.value} ${(latest.atMs / 1000).toFixed(3)}`;
    }
    return lines.join('\n');
  }

  /** Takes a metric's bounds from the text; exemplars recorded before (or under other bounds) find their buckets. */
  private learnBounds(metric: string, bounds: number[]): void {
    const known = this.bounds.get(metric);
    if (known && known.length === bounds.length && known.every((b, i) => b === bounds[i])) return;
    this.bounds.set(metric, bounds);
    for (const series of this.series.get(metric)?.values() ?? []) {
      const all = [...series.buckets.values(), ...series.pending].sort((a, b) => a.atMs - b.atMs);
      series.buckets.clear();
      series.pending = [];
      for (const e of all) place(series, bounds, e);
    }
  }

  private dropOlderThan(cutoffMs: number): void {
    for (const [metric, byLabels] of this.series) {
      for (const [key, series] of byLabels) {
        for (const [le, e] of series.buckets) if (e.atMs < cutoffMs) series.buckets.delete(le);
        series.pending = series.pending.filter((e) => e.atMs >= cutoffMs);
        if (series.buckets.size === 0 && series.pending.length === 0) {
          byLabels.delete(key);
          this.seriesCount--;
        }
      }
      if (byLabels.size === 0) this.series.delete(metric);
    }
  }
}

/** Puts an exemplar in the smallest bucket whose bound is ≥ its value, unless that bucket holds a later one. */
function place(series: Series, bounds: number[], e: Exemplar): void {
  const le = bounds.find((b) => e.value <= b);
  if (le === undefined) return;
  const held = series.buckets.get(le);
  if (!held || held.atMs <= e.atMs) series.buckets.set(le, e);
}

function labelKey(labels: Record<string, string>): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function parseLabels(text: string): Map<string, string> {
  const labels = new Map<string, string>();
  for (const m of text.matchAll(LABEL)) labels.set(m[1]!, unescapeLabel(m[2]!));
  return labels;
}

/** A label value as written in the text (`\\`, `\"` and `\n` escaped) back to the value. */
function unescapeLabel(written: string): string {
  return written.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

function parseBound(le: string | undefined): number | undefined {
  if (le === undefined) return undefined;
  if (le === '+Inf') return Infinity;
  const n = Number(le);
  return Number.isNaN(n) ? undefined : n;
}

function escape(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
