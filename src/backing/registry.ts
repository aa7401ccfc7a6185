// The one owner of a mount's backing ids (FUSE passthrough): every id from its registration to its
// close, in one of three states.
//   ahead  registered by the read-ahead across files before its file is opened; taken by the open,
//          or closed when nobody claims it for a while and room is needed.
//   open   held by the path whose handles read it (src/vfs/passthrough.ts counts those handles).
//   kept   its last handle closed; kept registered (up to a limit, least recently released out) so
//          that the next open of the same copy takes it back with no I/O.
// A registration is for one copy (a cached object version, identified by its file's stem). When the
// copy's file changes on disk or the copy is dropped, its registration stops being current: closed
// at once unless open, then closed at its release, never kept. The cache decides what a copy is and
// watches its files; this decides when an id closes.
import type { Metrics } from '../metrics/metrics.js';
import type { BackingFiles } from './files.js';

/** What the registry needs to know of a copy: the stem of its file, and whether the cache dropped it. */
export interface BackedCopy {
  readonly id: string;
  readonly dropped: boolean;
}

type State = 'ahead' | 'open' | 'kept';

interface Registration<C> {
  id: number;
  copy: C;
  state: State;
  /** When it was registered ahead, or released (performance.now()). */
  at: number;
  /** The copy's file has not changed since; only a current registration is handed out or kept. */
  current: boolean;
}

export interface RegistryLimits {
  /** Ids kept after their last close; 0 keeps none. */
  keep: number;
  /** Ids registered ahead at once. */
  ahead: number;
  /** An id registered ahead this long ago and not taken may be closed to make room. */
  aheadStaleMs: number;
}

export class BackingRegistry<C extends BackedCopy> {
  private readonly files: () => BackingFiles | undefined;
  private readonly limits: RegistryLimits;
  private readonly metrics: Metrics | undefined;
  private readonly byId = new Map<number, Registration<C>>();
  /** The current registration of each copy, by stem. */
  private readonly byCopy = new Map<string, Registration<C>>();
  /** Registered ahead, oldest first. */
  private readonly ahead = new Set<Registration<C>>();
  /** Kept, least recently released first. */
  private readonly kept = new Set<Registration<C>>();
  private keeping: boolean;

  /** `files`: the mount's backing files, once mounted with passthrough. */
  constructor(files: () => BackingFiles | undefined, limits: RegistryLimits, metrics?: Metrics) {
    this.files = files;
    this.limits = limits;
    this.metrics = metrics;
    this.keeping = limits.keep > 0;
  }

  /** Ids kept now (tests, metrics). */
  get keptCount(): number {
    return this.kept.size;
  }

  /** Whether `copy` has a current registration, in any state: nothing to register ahead for it. */
  registered(copy: C): boolean {
    return this.byCopy.get(copy.id)?.copy === copy;
  }

  /** Whether `copy`'s current registration is kept (an open may take it back). */
  isKept(copy: C): boolean {
    const r = this.byCopy.get(copy.id);
    return r?.copy === copy && r.state === 'kept';
  }

  /**
   * Room for one more id registered ahead: a free place, or the oldest one's, closed, if nobody
   * claimed it lately.
   */
  roomAhead(): boolean {
    if (this.ahead.size < this.limits.ahead) return true;
    const oldest = this.ahead.values().next().value as Registration<C>;
    if (performance.now() - oldest.at < this.limits.aheadStaleMs) return false;
    this.close(oldest);
    return true;
  }

  /** `id` was registered for `copy` by the read-ahead, before its open. */
  addAhead(copy: C, id: number): void {
    const r = this.add(copy, id, 'ahead');
    r.at = performance.now();
    this.ahead.add(r);
    // Registrations finished together may pass the limit that roomAhead() checked before they began.
    while (this.ahead.size > this.limits.ahead) this.close(this.ahead.values().next().value as Registration<C>);
  }

  /** `id` was registered for `copy` for an open, which now holds it. */
  addOpen(copy: C, id: number): void {
    this.add(copy, id, 'open');
  }

  /** The id registered ahead or kept for exactly `copy`, now held by the caller's open; undefined if none. */
  take(copy: C): number | undefined {
    const r = this.byCopy.get(copy.id);
    if (r?.copy !== copy || r.state === 'open' || copy.dropped) return undefined;
    this.ahead.delete(r);
    this.kept.delete(r);
    r.state = 'open';
    this.report();
    return r.id;
  }

  /** The open that held `id` let it go (its path's last handle closed): kept, or closed. */
  release(id: number): void {
    const r = this.byId.get(id);
    if (!r) {
      this.files()?.close(id);
      return;
    }
    if (!this.keeping || !r.current || r.copy.dropped) {
      this.close(r);
      return;
    }
    r.state = 'kept';
    r.at = performance.now();
    this.kept.add(r);
    if (this.kept.size > this.limits.keep) this.close(this.kept.values().next().value as Registration<C>);
    this.report();
  }

  /**
   * The file of the copy with this stem changed on disk (written, truncated, replaced, removed): its
   * registration is closed now, or at its release if open. The copy, if one was registered.
   */
  changed(stem: string): C | undefined {
    const r = this.byCopy.get(stem);
    if (!r) return undefined;
    this.forget(r);
    return r.copy;
  }

  /** Keeps nothing from now on (changes on disk can no longer be seen): the kept ids are closed. */
  stopKeeping(): void {
    this.keeping = false;
    for (const r of [...this.kept]) this.close(r);
  }

  /** Unmount: the ids go with the FUSE connection; nothing is closed. */
  clear(): void {
    this.byId.clear();
    this.byCopy.clear();
    this.ahead.clear();
    this.kept.clear();
    this.report();
  }

  private add(copy: C, id: number, state: State): Registration<C> {
    const r: Registration<C> = { id, copy, state, at: 0, current: true };
    this.byId.set(id, r);
    const old = this.byCopy.get(copy.id);
    // One registration per copy is current; an older one of the same file is stale.
    if (old) this.forget(old);
    this.byCopy.set(copy.id, r);
    return r;
  }

  /** No longer current: closed now unless open (then at release). */
  private forget(r: Registration<C>): void {
    r.current = false;
    if (this.byCopy.get(r.copy.id) === r) this.byCopy.delete(r.copy.id);
    if (r.state !== 'open') this.close(r);
  }

  private close(r: Registration<C>): void {
    this.ahead.delete(r);
    this.kept.delete(r);
    if (this.byId.get(r.id) === r) this.byId.delete(r.id);
    if (this.byCopy.get(r.copy.id) === r) this.byCopy.delete(r.copy.id);
    this.files()?.close(r.id);
    this.report();
  }

  private report(): void {
    this.metrics?.fileCachePassthroughKept.set(this.kept.size);
  }
}
