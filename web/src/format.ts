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

export function typeColour(vendor: string, model: string, alpha = 1): string {
  const hue = vendorHue(vendor);
  const sat = vendor.toLowerCase() === "cpu" ? 0 : 65;
  const light = 36 + (hash(model) % 4) * 7; // up to four distinct shades per vendor
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
