import { useState } from "preact/hooks";
import { ApiError, postJson } from "../api";

const EXAMPLE = `# A job spec (src/api/job_spec.h documents every field).
name: hello
tasks:
  - command: ["sh", "-c", "echo hello from icos; sleep 60"]
    resources: {cpu: 1, memory: 256Mi, devices: 1}
    devices: [{vendor: nvidia}]
`;

// Submits a YAML or JSON job spec as the signed-in user (POST /api/v1/jobs)
// and opens the new job's page.
export function Submit() {
  const [spec, setSpec] = useState(EXAMPLE);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const { id } = await postJson<{ id: number }>("/api/v1/jobs", spec, "application/yaml");
      window.location.hash = `/jobs/${id}`;
    } catch (err) {
      setError((err as ApiError).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="submit" onSubmit={submit}>
      <h2>Submit a job</h2>
      <textarea
        name="spec"
        rows={18}
        spellcheck={false}
        value={spec}
        onInput={(e) => setSpec((e.target as HTMLTextAreaElement).value)}
      />
      <div>
        <button type="submit" disabled={busy}>
          {busy ? "Submitting…" : "Submit"}
        </button>
      </div>
      {error && (
        <p class="error" role="alert" data-testid="submit-error">
          {error}
        </p>
      )}
    </form>
  );
}
