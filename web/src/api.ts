// The REST API v1 (docs/api.md) as the dashboard uses it. The token lives in
// sessionStorage: it is gone when the tab closes and never sent anywhere but
// this origin's /api.

export interface Whoami {
  user: string;
  role: "admin" | "user" | "agent";
  name: string;
}

export interface Job {
  id: number;
  name: string;
  user: string;
  queue: string;
  priority: number;
  state: "Pending" | "Running" | "Succeeded" | "Failed" | "Cancelled";
  reason: string;
  submit_ms: number;
  start_ms: number;
  end_ms: number;
  attempt: number;
  array_id: number; // 0 outside arrays
  array_index: number; // -1 outside arrays
  vendors?: string[];
}

export interface Task {
  task_id: string;
  group: number;
  replica: number;
  attempt: number;
  node: string;
  devices: { device: number; percent: number; memory_mib: number }[];
  state: string;
  exit_code: number;
  reason: string;
  start_ms: number;
  end_ms: number;
  max_rss_kib: number; // once ended: the largest process's peak memory; 0: unknown
}

export interface JobEvent {
  time_ms: number;
  kind: string;
  node: string;
  message: string;
}

// The run time the scheduler plans with (docs/api.md); null when unknown.
export interface RuntimeEstimate {
  seconds: number;
  source: "user" | "learned" | "time_limit";
}

// When a pending job should start (docs/scheduling.md, "When a job will
// start"): Unix ms at each quantile, null beyond the forecast's horizon.
export interface StartForecast {
  p10_ms: number | null;
  p50_ms: number | null;
  p90_ms: number | null;
  samples: number;
  made_ms: number;
}

export interface JobDetail extends Job {
  spec: unknown;
  start_forecast?: StartForecast; // pending jobs that have been forecast
  runtime_estimate: RuntimeEstimate | null;
  // While it runs: how busy its devices have been (docs/api.md); null before the first report.
  device_use: {
    busy_pct: number;
    samples: number;
    memory_peak_mib: number;
    memory_total_mib: number;
    summary: string;
  } | null;
  tasks: Task[];
  events: JobEvent[];
}

export interface Device {
  vendor: string;
  model: string;
  memory_mib: number;
  compute_units: number;
  healthy: boolean;
  drained: boolean;
  island: number;
  numa_node: number;
  pcie_switch: number;
  shareable: boolean;
  // The index its vendor's runtime gives it (CUDA_VISIBLE_DEVICES ...); -1 unknown.
  runtime_index?: number;
}

export interface Allocation {
  device: number;
  job_id: number; // 0: another user's job (the API does not say whose)
  job_name: string;
  user: string;
  task_id: string;
  percent: number;
  memory_mib: number;
}

export interface NodeEntry {
  name: string;
  state: string;
  drained: boolean;
  address: string;
  heartbeat_ms: number;
  tasks: number;
  node: { name: string; cpu_milli: number; memory_mib: number; devices: Device[]; labels: Record<string, string> };
  allocations?: Allocation[];
  // What each device is doing (node.devices order; -1 unknown), from the
  // agent's last health check; [] before its first report.
  usage?: { utilization_pct: number; memory_used_mib: number }[];
  // Set when jobs here run clearly longer against their estimates than elsewhere.
  slow_reason?: string;
  // Why the node's health-check program failed; empty while healthy.
  unhealthy_reason?: string;
}

// A service (kind: service; docs/services.md) and its replicas.
export interface ServiceReplica {
  replica: number;
  job: number;
  attempt: number;
  state: Job["state"];
  node: string;
  address: string; // host:port while its task runs
  ready: boolean;
  current: boolean; // runs the revision the service should run (else an older one, being replaced)
  since_ms: number;
  reason: string;
}

export interface Service {
  id: number;
  name: string;
  user: string;
  replicas: number; // how many it should have (set by hand or by its autoscaler)
  revision: number;
  rollout: string; // "complete", "rolling out revision N", "stopped"
  ready: number;
  endpoints: ServiceReplica[];
}

// GET /api/v1/services/{id}/traffic: what the gateways measured, a point per step.
export interface TrafficPoint {
  t_ms: number;
  rps: number;
  in_flight: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
}

export interface ServiceTraffic {
  step_ms: number;
  points: TrafficPoint[];
}

export type Amounts = Record<string, number>;

export interface Queue {
  name: string;
  parent: string;
  weight: number;
  guaranteed: Amounts;
  limit: Amounts;
  used?: Amounts;
  lend_idle: boolean;
  may_borrow: boolean;
  pending: number;
  running: number;
}

export interface UtilisationSample {
  t: number;
  by_type: Record<string, { allocated: number; total: number }>;
  by_queue: Record<string, number>;
}

export interface Utilisation {
  step_s: number;
  samples: UtilisationSample[];
}

export interface UsageRow {
  key: string;
  device_hours: Record<string, number>;
  device_hours_total: number;
  cpu_hours: number;
  jobs: { submitted: number; succeeded: number; failed: number; cancelled: number };
}

export interface Usage {
  by: string;
  since: number;
  until: number;
  rows: UsageRow[];
}

const TOKEN_KEY = "icos.token";

export function savedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// An answer other than 2xx: the API's {"error", "code"} with the HTTP status.
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function request(path: string, init: RequestInit = {}, token = savedToken()): Promise<Response> {
  const headers = new Headers(init.headers);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers });
  } catch (e) {
    throw new ApiError(0, "Unavailable", `cannot reach the controller: ${(e as Error).message}`);
  }
  if (!res.ok) {
    let code = "Internal";
    let message = `HTTP ${res.status}`;
    try {
      const body = await res.json();
      code = body.code ?? code;
      message = body.error ?? message;
    } catch {
      // Not the API's JSON (a proxy's page): keep the HTTP status.
    }
    throw new ApiError(res.status, code, message);
  }
  return res;
}

export async function getJson<T>(path: string, token?: string): Promise<T> {
  const res = await request(path, {}, token ?? savedToken());
  return (await res.json()) as T;
}

export async function postJson<T>(path: string, body: string, contentType = "application/json"): Promise<T> {
  const res = await request(path, { method: "POST", body, headers: { "Content-Type": contentType } });
  return (await res.json()) as T;
}

export interface LogChunk {
  text: string;
  offset: number;
  finished: boolean;
}

// Bytes of a task's log from `offset`; the server says where to continue.
export async function getLog(job: number, task: number, offset: number): Promise<LogChunk> {
  const res = await request(`/api/v1/jobs/${job}/logs?task=${task}&offset=${offset}`);
  const text = await res.text();
  const next = Number(res.headers.get("X-Icos-Offset") ?? offset + text.length);
  return { text, offset: next, finished: res.headers.get("X-Icos-Finished") === "1" };
}
