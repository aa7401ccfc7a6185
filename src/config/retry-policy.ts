// How the store layer retries, and the one rule for how long it may wait between attempts. The
// FUSE op timeout is derived from the same rule (config.ts), so the store answers EIO itself
// before the kernel's request times out.

export interface RetryPolicy {
  /** Total attempts including the first (1 = no retry). */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 6, baseDelayMs: 100, maxDelayMs: 5_000 };

/** Throttling (HTTP 429/503 SlowDown) deserves a longer pause than a dropped connection. */
const THROTTLED_BASE_FACTOR = 4;

/**
 * The longest pause before attempt `attempt + 1` (attempt counts from 1); the pause itself is
 * drawn uniformly below it (full jitter).
 */
export function backoffCeilingMs(p: RetryPolicy, attempt: number, throttled: boolean): number {
  const base = throttled ? p.baseDelayMs * THROTTLED_BASE_FACTOR : p.baseDelayMs;
  return Math.min(p.maxDelayMs, base * 2 ** attempt);
}

/** Worst-case time spent sleeping between attempts (every failure a throttle). */
export function worstCaseBackoffMs(p: RetryPolicy): number {
  let total = 0;
  for (let i = 1; i < p.maxAttempts; i++) total += backoffCeilingMs(p, i, true);
  return total;
}
