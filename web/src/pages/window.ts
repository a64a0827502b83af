// Time windows the history pages offer, in seconds back from now.
export const WINDOWS: { label: string; seconds: number }[] = [
  { label: "last 15 minutes", seconds: 15 * 60 },
  { label: "last hour", seconds: 3600 },
  { label: "last 6 hours", seconds: 6 * 3600 },
  { label: "last day", seconds: 86400 },
  { label: "last 7 days", seconds: 7 * 86400 },
  { label: "last 30 days", seconds: 30 * 86400 },
];
