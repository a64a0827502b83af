import { useState } from "preact/hooks";
import { ApiError, getJson, type Whoami } from "../api";

// Signs in with an API token (`icos token create`, or admin.token in the
// controller's data directory); the role comes from /api/v1/whoami.
export function SignIn({ onSignedIn, notice }: { onSignedIn: (w: Whoami, token: string) => void; notice?: string }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | undefined>(notice ? `Signed out: ${notice}` : undefined);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) {
      setError("Paste an API token first.");
      return;
    }
    setBusy(true);
    try {
      const who = await getJson<Whoami>("/api/v1/whoami", t);
      onSignedIn(who, t);
    } catch (err) {
      const e = err as ApiError;
      setError(
        e.status === 401
          ? `This token was not accepted (${e.message}). Check it, or create one with: icos token create --role user --user NAME`
          : `Sign-in failed: ${e.message}`,
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="signin" onSubmit={submit}>
      <h1>icos</h1>
      <p class="muted">Sign in with an API token. An admin token is in the controller's data directory (admin.token).</p>
      <label>
        Token
        <input
          name="token"
          type="password"
          autoComplete="off"
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
        />
      </label>
      <button type="submit" disabled={busy}>
        {busy ? "Signing in…" : "Sign in"}
      </button>
      {error && (
        <p class="error" role="alert" data-testid="signin-error">
          {error}
        </p>
      )}
    </form>
  );
}
