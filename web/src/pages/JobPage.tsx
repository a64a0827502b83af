import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, getJson, getLog, postJson, type JobDetail, type NodeEntry, type Whoami } from "../api";
import { fmtDuration, fmtMib, fmtTime, fmtUntil, runtimeMs } from "../format";
import { usePoll } from "../hooks";
import { ErrorBox } from "./ErrorBox";

const LOG_KEEP = 256 * 1024; // characters of log the page keeps (the tail)

// "worker x2: python3 train.py --epochs 5" for each task group of a stored spec.
function commandsOf(spec: unknown): string {
  const tasks = (spec as { tasks?: { name?: string; replicas?: number; command?: string[] }[] })?.tasks ?? [];
  return tasks
    .map((t) => `${t.name ?? "task"}${(t.replicas ?? 1) > 1 ? ` x${t.replicas}` : ""}: ${(t.command ?? []).join(" ")}`)
    .join("; ");
}
const ESTIMATE_SOURCES = { user: "given", learned: "learned from similar jobs", time_limit: "time limit" };

// The live tail of one task's log: polls the logs endpoint from the last
// offset (as `icos logs --follow` does) until the task has ended.
function LogTail({ job, task, active }: { job: number; task: number; active: boolean }) {
  const [text, setText] = useState("");
  const [note, setNote] = useState<string>();
  const [finished, setFinished] = useState(false);
  const pre = useRef<HTMLPreElement>(null);
  const activeRef = useRef(active);
  activeRef.current = active;

  useEffect(() => {
    let alive = true;
    let offset = -1; // unknown: the first read learns the log's size
    let timer: number | undefined;
    setText("");
    setFinished(false);
    setNote(undefined);
    const poll = async () => {
      try {
        if (offset < 0) {
          // Open at the tail, as a terminal would: an offset past the end
          // reads nothing and says where the log ends; start LOG_KEEP before it.
          const end = (await getLog(job, task, Number.MAX_SAFE_INTEGER)).offset;
          if (!alive) return;
          offset = Math.max(0, end - LOG_KEEP);
          if (offset > 0) setText(`[${offset} earlier bytes not shown: icos logs ${job} --task ${task}]\n`);
        }
        const chunk = await getLog(job, task, offset);
        if (!alive) return;
        offset = chunk.offset;
        if (chunk.text) setText((t) => (t + chunk.text).slice(-LOG_KEEP));
        setNote(undefined);
        if (chunk.finished) {
          setFinished(true);
          return;
        }
      } catch (e) {
        if (!alive) return;
        // Not started yet (409) is normal for a pending job: keep waiting.
        setNote((e as ApiError).message);
        if (!activeRef.current && (e as ApiError).status !== 409) return;
      }
      timer = window.setTimeout(poll, 1000);
    };
    poll();
    return () => {
      alive = false;
      if (timer !== undefined) window.clearTimeout(timer);
    };
  }, [job, task]);

  // Follow the end unless the reader scrolled up.
  useEffect(() => {
    const el = pre.current;
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 80) el.scrollTop = el.scrollHeight;
  }, [text]);

  return (
    <div>
      <pre class="log" ref={pre} data-testid="log-tail">
        {text}
      </pre>
      <p class="muted">
        {finished ? "The task has ended; this is its whole log." : note ? note : "Following the log (every second)…"}
      </p>
    </div>
  );
}

export function JobPage({ id, me }: { id: number; me: Whoami }) {
  const { data: job, error, reload } = usePoll(() => getJson<JobDetail>(`/api/v1/jobs/${id}`), 2000, [id]);
  const nodes = usePoll(() => getJson<{ nodes: NodeEntry[] }>("/api/v1/nodes"), 5000);
  const [task, setTask] = useState(0);
  // Another job's page starts at its first task (this component is reused).
  useEffect(() => setTask(0), [id]);
  const [cancelError, setCancelError] = useState<string>();
  const [cancelling, setCancelling] = useState(false);

  if (!job) {
    return (
      <div>
        <h2>Job {id}</h2>
        <ErrorBox error={error} what={`job ${id}`} />
        {!error && <p class="muted">Loading…</p>}
      </div>
    );
  }
  const ended = ["Succeeded", "Failed", "Cancelled"].includes(job.state);
  // The server decides; the button is shown only to those it would allow.
  const mayCancel = !ended && (me.role === "admin" || (me.role === "user" && me.user === job.user));
  const attempt = Math.max(0, ...job.tasks.map((t) => t.attempt));
  const current = job.tasks.filter((t) => t.attempt === attempt);
  // "nvidia/A100" and, where its runtime numbers it otherwise (a node with
  // several vendors), the number the task sees: "ascend/910B, ASCEND 2".
  const deviceName = (node: string, index: number) => {
    const d = nodes.data?.nodes.find((n) => n.name === node)?.node.devices[index];
    if (!d) return "";
    const seen = d.runtime_index !== undefined && d.runtime_index >= 0 && d.runtime_index !== index;
    return `${d.vendor}/${d.model}${seen ? ` (the task's ${d.vendor} ${d.runtime_index})` : ""}`;
  };

  const cancel = async () => {
    if (!window.confirm(`Cancel job ${id} (${job.name})?`)) return;
    setCancelling(true);
    setCancelError(undefined);
    try {
      await postJson(`/api/v1/jobs/${id}/cancel`, "{}");
      reload();
    } catch (e) {
      setCancelError((e as ApiError).message);
    } finally {
      setCancelling(false);
    }
  };

  return (
    <div class="jobpage">
      <h2>
        Job {job.id}: {job.name}{" "}
        <span class={`state ${job.state}`} data-testid="job-state">
          {job.state}
        </span>
      </h2>
      <ErrorBox error={error} what={`job ${id}`} />
      <dl class="facts">
        <dt>user</dt>
        <dd>{job.user}</dd>
        <dt>queue</dt>
        <dd>{job.queue}</dd>
        <dt>priority</dt>
        <dd>{job.priority}</dd>
        <dt>attempt</dt>
        <dd>{job.attempt}</dd>
        <dt>submitted</dt>
        <dd>{fmtTime(job.submit_ms)}</dd>
        <dt>started</dt>
        <dd>{fmtTime(job.start_ms)}</dd>
        <dt>ended</dt>
        <dd>{fmtTime(job.end_ms)}</dd>
        <dt>runtime</dt>
        <dd>{fmtDuration(runtimeMs(job))}</dd>
        <dt>estimate</dt>
        <dd data-testid="job-estimate" title="the run time the scheduler orders and backfills with">
          {job.runtime_estimate
            ? `${fmtDuration(job.runtime_estimate.seconds * 1000)} (${ESTIMATE_SOURCES[job.runtime_estimate.source]})`
            : "unknown"}
        </dd>
        {job.device_use && (
          <>
            <dt>device use</dt>
            <dd data-testid="job-device-use">{job.device_use.summary}</dd>
          </>
        )}
        {job.state === "Pending" && job.start_forecast && (
          <>
            <dt>expected start</dt>
            <dd
              data-testid="job-forecast"
              title="the scheduler run forward from the cluster's state, over run times drawn from each estimate's error, calibrated by how earlier forecasts fared"
            >
              {fmtUntil(job.start_forecast.p50_ms)} (8 in 10 between {fmtUntil(job.start_forecast.p10_ms)} and{" "}
              {fmtUntil(job.start_forecast.p90_ms)}; forecast {fmtTime(job.start_forecast.made_ms)})
            </dd>
          </>
        )}
        <dt>{job.state === "Pending" ? "waiting because" : "reason"}</dt>
        <dd class="reason" data-testid="job-reason">
          {job.reason || "–"}
        </dd>
      </dl>
      {mayCancel && (
        <button class="danger" onClick={cancel} disabled={cancelling} data-testid="cancel">
          {cancelling ? "Cancelling…" : "Cancel job"}
        </button>
      )}
      {cancelError && <p class="error">Cancel failed: {cancelError}</p>}

      <details class="spec" data-testid="job-spec">
        <summary>Spec: {commandsOf(job.spec)}</summary>
        <pre>{JSON.stringify(job.spec, null, 2)}</pre>
      </details>

      <h3>Tasks and placement</h3>
      {job.tasks.length === 0 ? (
        <p class="muted">Not placed yet.</p>
      ) : (
        <table class="grid">
          <thead>
            <tr>
              <th>#</th>
              <th>task</th>
              <th>attempt</th>
              <th>node</th>
              <th>devices</th>
              <th>state</th>
              <th>exit</th>
              <th title="peak memory of the task's largest process">max RSS</th>
              <th>reason</th>
              <th>runtime</th>
            </tr>
          </thead>
          <tbody>
            {job.tasks.map((t) => (
              <tr class={t.attempt === attempt ? "" : "old"}>
                <td>{t.attempt === attempt ? current.indexOf(t) : ""}</td>
                <td>{t.task_id}</td>
                <td>{t.attempt}</td>
                <td>{t.node}</td>
                <td>
                  {t.devices.length === 0
                    ? "–"
                    : t.devices
                        .map(
                          (d) =>
                            `#${d.device} ${deviceName(t.node, d.device)}${d.percent < 100 ? ` ${d.percent}%` : ""}`,
                        )
                        .join(", ")}
                </td>
                <td>
                  <span class={`state ${t.state}`}>{t.state}</span>
                </td>
                <td>{t.state === "Succeeded" || t.state === "Failed" ? t.exit_code : ""}</td>
                <td>{t.max_rss_kib > 0 ? fmtMib(Math.ceil(t.max_rss_kib / 1024)) : ""}</td>
                <td class="reason">{t.reason}</td>
                <td>{fmtDuration(runtimeMs(t))}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <h3>
        Log{" "}
        {current.length > 1 && (
          <select value={task} onChange={(e) => setTask(Number((e.target as HTMLSelectElement).value))}>
            {current.map((t, i) => (
              <option value={i}>
                task {i} ({t.task_id})
              </option>
            ))}
          </select>
        )}
      </h3>
      <LogTail job={id} task={task} active={!ended} />

      <h3>Events</h3>
      <table class="grid events">
        <tbody>
          {job.events.map((e) => (
            <tr>
              <td>{fmtTime(e.time_ms)}</td>
              <td>{e.kind}</td>
              <td>{e.node}</td>
              <td>{e.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
