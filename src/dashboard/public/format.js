/** Number formatting with a fixed number of decimals, so values keep their width as they change. */
export const DASH = '—';

const has = (v) => typeof v === 'number' && Number.isFinite(v);

export function rate(v) {
  if (!has(v)) return DASH;
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

export function seconds(v) {
  if (!has(v)) return DASH;
  if (v < 1) return `${(v * 1000).toFixed(v < 0.01 ? 2 : v < 0.1 ? 1 : 0)} ms`;
  return `${v.toFixed(2)} s`;
}

export function percent(ratio) {
  return has(ratio) ? `${(ratio * 100).toFixed(1)} %` : DASH;
}

export function integer(v) {
  return has(v) ? Math.round(v).toLocaleString('en-US') : DASH;
}

export function bytes(v) {
  if (!has(v)) return DASH;
  const gib = v / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${(v / 2 ** 20).toFixed(0)} MiB`;
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
}
