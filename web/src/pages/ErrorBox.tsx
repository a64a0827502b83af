import type { ApiError } from "../api";

export function ErrorBox({ error, what }: { error?: ApiError; what: string }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      Could not load {what}: {error.message}
    </p>
  );
}
