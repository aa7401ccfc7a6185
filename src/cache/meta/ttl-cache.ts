// A size-bounded LRU with bucketfs TTL semantics, on lru-cache, reporting to metrics.
// TTL: 0 = never store (revalidate every use), Infinity = never expire, N ms otherwise.
// Size: bytes, estimated per entry by the caller's `cost`; Infinity = unbounded.
import { LRUCache } from 'lru-cache';
import type { Metrics } from '../../metrics/metrics.js';

export interface TtlCacheOptions<V> {
  /** Name in metrics: stat, type, list, negative. */
  name: string;
  ttlMs: number;
  maxBytes: number;
  /** Estimated bytes held by one entry, key included. */
  cost: (key: string, value: V) => number;
  metrics: Metrics;
}

/** Rough per-entry overhead of an lru-cache slot (key/value arrays, maps, linked list). */
export const ENTRY_OVERHEAD_BYTES = 120;

/** UTF-16 string bytes as V8 holds them (worst case, two bytes a char). */
export function stringBytes(s: string): number {
  return 2 * s.length + 16;
}

export class TtlCache<V extends {}> {
  private readonly lru: LRUCache<string, V> | undefined;
  private readonly opts: TtlCacheOptions<V>;

  constructor(opts: TtlCacheOptions<V>) {
    this.opts = opts;
    if (opts.ttlMs === 0 || opts.maxBytes === 0) return;
    const bounded = Number.isFinite(opts.maxBytes);
    this.lru = new LRUCache<string, V>({
      maxSize: bounded ? opts.maxBytes : Number.MAX_SAFE_INTEGER,
      sizeCalculation: (v, k) => Math.max(1, Math.ceil(opts.cost(k, v))),
      // lru-cache's ttl 0 means "no TTL", which is our Infinity.
      ttl: Number.isFinite(opts.ttlMs) ? opts.ttlMs : 0,
      updateAgeOnGet: false,
      allowStale: false,
      dispose: (_v, _k, reason) => {
        if (reason === 'evict') opts.metrics.cacheEvents.inc({ cache: opts.name, event: 'evict' });
      },
    });
  }

  get enabled(): boolean {
    return this.lru !== undefined;
  }

  get(key: string): V | undefined {
    if (!this.lru) return undefined;
    const v = this.lru.get(key);
    this.opts.metrics.cacheEvents.inc({ cache: this.opts.name, event: v === undefined ? 'miss' : 'hit' });
    return v;
  }

  /** Peek without counting a hit or miss (internal consistency checks). */
  peek(key: string): V | undefined {
    return this.lru?.get(key);
  }

  /** Stores a value; `ttlMs` overrides the cache's TTL for this entry (0 = do not store). */
  set(key: string, value: V, ttlMs?: number): void {
    if (!this.lru) return;
    if (ttlMs === 0) {
      this.lru.delete(key);
      return;
    }
    const ttl = ttlMs === undefined ? undefined : Number.isFinite(ttlMs) ? ttlMs : 0;
    this.lru.set(key, value, ttl === undefined ? undefined : { ttl });
    this.report();
  }

  /**
   * Replaces a present entry, keeping the time it has left: a local change to a cached listing must
   * not make the rest of it live longer. False when there is no entry to replace.
   */
  replace(key: string, value: V): boolean {
    if (!this.lru?.has(key)) return false;
    const left = this.lru.getRemainingTTL(key);
    if (left <= 0) return false;
    this.lru.set(key, value, Number.isFinite(left) ? { ttl: left } : undefined);
    return true;
  }

  /** Drops every entry whose key starts with `prefix` (a directory renamed away): one pass over the cache. */
  deleteUnder(prefix: string): void {
    if (!this.lru) return;
    for (const key of [...this.lru.keys()]) if (key.startsWith(prefix)) this.lru.delete(key);
  }

  delete(key: string): void {
    this.lru?.delete(key);
  }

  clear(): void {
    this.lru?.clear();
    this.report();
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  get bytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }

  private report(): void {
    this.opts.metrics.cacheEntries.set({ cache: this.opts.name }, this.size);
    this.opts.metrics.cacheBytes.set({ cache: this.opts.name }, this.bytes);
  }
}
