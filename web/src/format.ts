// Small formatting helpers shared by the pages.

export function fmtTime(ms: number): string {
  if (!ms) return "–";
  return new Date(ms).toLocaleString();
}

export function fmtDuration(ms: number): string {
  if (ms <= 0) return "–";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

// A forecast quantile as the CLI says it: "in 12m 5s", "now", "later"
// (beyond the horizon).
export function fmtUntil(atMs: number | null, now = Date.now()): string {
  if (atMs === null || atMs === undefined) return "later";
  return atMs <= now ? "now" : `in ${fmtDuration(atMs - now)}`;
}

export function runtimeMs(j: { start_ms: number; end_ms: number }, now = Date.now()): number {
  if (!j.start_ms) return 0;
  return (j.end_ms || now) - j.start_ms;
}

// Amounts as the API gives them: devices and CPU in units, memory in MiB.
export function fmtAmount(key: string, v: number | undefined): string {
  if (v === undefined) return "–";
  if (key === "memory") return v >= 1024 ? `${(v / 1024).toFixed(1)} GiB` : `${v} MiB`;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

export function fmtMib(mib: number): string {
  return mib >= 1024 ? `${Math.round(mib / 1024)} GiB` : `${mib} MiB`;
}

// A stable colour per vendor, a shade of it per model: the map and the
// charts use the same colours for the same device type.
const VENDOR_HUES: Record<string, number> = {
  nvidia: 90,
  ascend: 355,
  cambricon: 212,
  amd: 20,
  rocm: 20,
  hygon: 280,
  dcu: 280,
  kunlun: 40,
  kunlunxin: 40,
  mthreads: 180,
  moorethreads: 180,
  sim: 160,
  cpu: 0,
};

function hash(s: string): number {
  let h = 0;
  for (const c of s) h = (h * 31 + c.charCodeAt(0)) | 0;
  return Math.abs(h);
}

export function vendorHue(vendor: string): number {
  return VENDOR_HUES[vendor.toLowerCase()] ?? hash(vendor) % 360;
}

// Models of one vendor stay near its hue but differ in hue, lightness and
// saturation at once (shades of lightness alone looked alike): nine
// combinations, walked by the model's hash.
export function typeColour(vendor: string, model: string, alpha = 1): string {
  const cpu = vendor.toLowerCase() === "cpu";
  const h = hash(model);
  const hue = (vendorHue(vendor) + [0, -28, 28][h % 3] + 360) % 360;
  const light = cpu ? 45 : [32, 46, 60][Math.floor(h / 3) % 3];
  const sat = cpu ? 0 : [70, 55, 85][Math.floor(h / 3) % 3];
  return `hsla(${hue} ${sat}% ${light}% / ${alpha})`;
}

export function keyColour(key: string, alpha = 1): string {
  const [vendor, model = ""] = key.split("/");
  return typeColour(vendor, model, alpha);
}

// For series that are not device types (queues).
export function paletteColour(i: number): string {
  const hues = [210, 30, 130, 280, 0, 180, 60, 330];
  return `hsl(${hues[i % hues.length]} 60% 45%)`;
}
