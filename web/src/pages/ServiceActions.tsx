import { useState } from "preact/hooks";
import { getJson, postJson, type ApiError, type Service, type Whoami } from "../api";

interface Revision {
  revision: number;
  spec: unknown;
}

// What the owner of a service (or an admin) can do to it from the services
// page, as `icos service ...` does: scale it, pause or resume its rollouts,
// roll it back, roll out an edited spec, or cancel it. Each asks the API and
// says what it answered; the page's next poll shows the effect.
export function ServiceActions({ service, me }: { service: Service; me: Whoami }) {
  const [replicas, setReplicas] = useState(String(service.replicas));
  const [spec, setSpec] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [said, setSaid] = useState<{ ok: boolean; text: string }>();
  if (!(me.role === "admin" || (me.role === "user" && me.user === service.user))) return null;
  const paused = service.rollout.startsWith("paused");
  const base = `/api/v1/services/${service.id}`;

  const act = async (what: string, path: string, body = "{}", contentType = "application/json") => {
    setBusy(true);
    setSaid(undefined);
    try {
      const answer = await postJson<Record<string, unknown>>(path, body, contentType);
      setSaid({ ok: true, text: `${what}: ${JSON.stringify(answer)}` });
      return true;
    } catch (e) {
      setSaid({ ok: false, text: `${what} refused: ${(e as ApiError).message}` });
      return false;
    } finally {
      setBusy(false);
    }
  };
  const edit = async () => {
    if (spec !== undefined) return setSpec(undefined);
    try {
      const state = await getJson<{ revisions: Revision[] }>(base);
      const current = state.revisions.find((r) => r.revision === service.revision) ?? state.revisions[state.revisions.length - 1];
      // Its spec as it runs now: with the count it was scaled to since (an
      // update to a spec's own count would scale it back).
      const now = (current?.spec ?? {}) as { service?: { replicas?: number } };
      if (now.service) now.service.replicas = service.replicas;
      setSpec(JSON.stringify(now, null, 2));
    } catch (e) {
      setSaid({ ok: false, text: `cannot read its spec: ${(e as ApiError).message}` });
    }
  };

  return (
    <div class="service-actions" data-testid="service-actions">
      <label>
        replicas{" "}
        <input
          type="number"
          min={0}
          value={replicas}
          data-testid="scale-to"
          onInput={(e) => setReplicas((e.target as HTMLInputElement).value)}
        />
      </label>{" "}
      <button
        disabled={busy}
        data-testid="scale"
        onClick={() => act("scale", `${base}/scale`, JSON.stringify({ replicas: Number(replicas) }))}
      >
        Scale
      </button>{" "}
      <button disabled={busy} onClick={() => act(paused ? "resume" : "pause", `${base}/${paused ? "resume" : "pause"}`)}>
        {paused ? "Resume" : "Pause"}
      </button>{" "}
      <button
        disabled={busy}
        onClick={() => window.confirm(`Roll ${service.name} back to its last complete revision?`) && act("rollback", `${base}/rollback`, "")}
      >
        Roll back
      </button>{" "}
      <button disabled={busy} data-testid="edit-spec" onClick={edit}>
        {spec === undefined ? "Update spec…" : "Close editor"}
      </button>{" "}
      <button
        disabled={busy}
        class="danger"
        onClick={() =>
          window.confirm(`Cancel service ${service.name} and stop all its replicas?`) &&
          act("cancel", `/api/v1/jobs/${service.id}/cancel`)
        }
      >
        Cancel service
      </button>
      {spec !== undefined && (
        <div class="spec-editor">
          <textarea
            rows={14}
            value={spec}
            data-testid="spec-text"
            onInput={(e) => setSpec((e.target as HTMLTextAreaElement).value)}
          />
          <button
            disabled={busy}
            data-testid="roll-out"
            onClick={async () => {
              if (await act("update", `${base}/update`, spec, "application/yaml")) setSpec(undefined);
            }}
          >
            Roll out
          </button>
        </div>
      )}
      {said && (
        <p class={said.ok ? "muted" : "error"} data-testid="action-result">
          {said.text}
        </p>
      )}
    </div>
  );
}
