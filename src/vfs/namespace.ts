// The metadata road: mount paths -> file | dir | absent, and directory listings, through the
// stat, type and list caches. A directory is a key prefix; "implicit" directories (no marker
// object) are found by listing. When a key is both an object and a prefix ("a" and "a/b"),
// the directory wins and the object is hidden (as in Mountpoint); docs/semantics.md says so.
// A symbolic link "a" is the object "a.rclonelink" (names.ts SYMLINK_SUFFIX); a file or directory
// "a" hides it.
import { ENTRY_OVERHEAD_BYTES, stringBytes, TtlCache } from '../cache/meta/ttl-cache.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ObjectMeta, ObjectStore } from '../store/types.js';
import {
  baseName,
  dirPrefix,
  joinPath,
  nameProblem,
  parentPath,
  pathToKey,
  SkippedKeyLog,
  SYMLINK_SUFFIX,
} from './names.js';

/** A symlink's meta is its link object's (key with SYMLINK_SUFFIX; size: the target's length). */
export type Entry = { type: 'dir' } | { type: 'file' | 'symlink'; meta: ObjectMeta };

export interface DirEntry {
  name: string;
  entry: Entry;
}

type NodeType = 'file' | 'dir' | 'symlink' | 'absent';

const DIR: Entry = Object.freeze({ type: 'dir' as const });

/** How long a TTL-0 answer serves the other requests of the same system call. */
const JUST_FOUND_MS = 100;
/** Bound on those answers kept (they are tiny and short-lived). */
const JUST_FOUND_MAX = 10_000;
/**
 * A file version the store gave this long ago is taken as current by a write (the kernel looks a
 * name up right before it opens it): older ones are asked for again. A version changed in between
 * costs no data, only an ESTALE at close: the upload is conditional on it.
 */
const CURRENT_FOR_WRITE_MS = 1000;

/** Cached listings up to this many entries take a local change in place (see relist). */
const RELIST_MAX = 10_000;

/** Rough bytes of one Map slot in a listing's by-name index. */
const INDEX_SLOT_BYTES = 40;
/**
 * By-name index of a cached listing, built on first use and gone with the listing: a stat of each
 * of 100,000 children must not scan the listing each time.
 */
const listingIndex = new WeakMap<DirEntry[], Map<string, Entry>>();

function indexOf(entries: DirEntry[]): Map<string, Entry> {
  let index = listingIndex.get(entries);
  if (!index) {
    index = new Map(entries.map((e) => [e.name, e.entry]));
    listingIndex.set(entries, index);
  }
  return index;
}

function metaBytes(m: ObjectMeta): number {
  return stringBytes(m.key) + stringBytes(m.etag) + (m.generation ? stringBytes(m.generation) : 0) + 96;
}

export type NamespaceConfig = Pick<
  Config,
  'prefix' | 'statTtl' | 'negativeTtl' | 'listTtl' | 'statCacheBytes' | 'typeCacheBytes' | 'listCacheBytes'
>;

export class Namespace {
  private readonly store: ObjectStore;
  private readonly prefix: string;
  private readonly negativeTtl: number;
  private readonly skipped: SkippedKeyLog;
  /** Object metadata by key. */
  readonly stats: TtlCache<ObjectMeta>;
  /** What a path is: file, dir, symlink or absent (absent entries live for the negative TTL). */
  readonly types: TtlCache<NodeType>;
  /** Directory listings by path. */
  readonly lists: TtlCache<DirEntry[]>;
  private readonly inflightLookups = new Map<string, Promise<Entry | undefined>>();
  /**
   * With a stat TTL of 0 nothing is cached, yet one system call makes the kernel ask several times
   * (a `cat` sends LOOKUP, GETATTR, GETATTR, OPEN, GETATTR... for one name): lookups and getattrs
   * within JUST_FOUND_MS of the name's last answer share it. An open always asks (and its answer
   * serves the getattrs after it), so it reads the version current when it opened. Empty with any
   * other TTL: the caches serve.
   */
  private readonly justFound = new Map<string, { entry: Entry | undefined; at: number }>();
  private readonly revalidateEveryUse: boolean;
  private readonly inflightLists = new Map<string, Promise<DirEntry[]>>();
  /** When the store gave each file version a HEAD answered (currentFor). */
  private readonly headAt = new WeakMap<ObjectMeta, number>();
  /** Keys removed here whose objects are deleted only once the handles reading them close: absent to lookups and listings. */
  private readonly deleting = new Set<string>();

  constructor(store: ObjectStore, config: NamespaceConfig, metrics: Metrics, log: Logger) {
    this.store = store;
    this.prefix = config.prefix;
    this.negativeTtl = config.negativeTtl;
    this.revalidateEveryUse = config.statTtl === 0;
    this.skipped = new SkippedKeyLog(log);
    this.stats = new TtlCache<ObjectMeta>({
      name: 'stat',
      ttlMs: config.statTtl,
      maxBytes: config.statCacheBytes,
      cost: (k, m) => stringBytes(k) + metaBytes(m) + ENTRY_OVERHEAD_BYTES,
      metrics,
    });
    this.types = new TtlCache<NodeType>({
      name: 'type',
      ttlMs: config.statTtl,
      maxBytes: config.typeCacheBytes,
      cost: (k) => stringBytes(k) + ENTRY_OVERHEAD_BYTES,
      metrics,
    });
    this.lists = new TtlCache<DirEntry[]>({
      name: 'list',
      ttlMs: config.listTtl,
      maxBytes: config.listCacheBytes,
      // Per child: its name, the DirEntry, its metadata, and a slot in the by-name index.
      cost: (k, entries) =>
        stringBytes(k) +
        ENTRY_OVERHEAD_BYTES +
        entries.reduce(
          (s, e) => s + stringBytes(e.name) + 48 + INDEX_SLOT_BYTES + ('meta' in e.entry ? metaBytes(e.entry.meta) : 0),
          0,
        ),
      metrics,
    });
  }

  /**
   * What `path` is, or undefined when nothing is there. `forOpen`: with TTL 0, ask the store even
   * when another request just did (the version an open pins must be the current one).
   */
  lookup(path: string, signal?: AbortSignal, forOpen = false): Promise<Entry | undefined> {
    if (path === '/') return Promise.resolve(DIR);
    const cached = this.fromCache(path);
    if (cached !== 'unknown') return Promise.resolve(cached);
    const recent = forOpen ? undefined : this.justFound.get(path);
    if (recent && Date.now() - recent.at <= JUST_FOUND_MS) return Promise.resolve(recent.entry);
    let p = this.inflightLookups.get(path);
    if (!p) {
      p = this.fetchEntry(path, signal).finally(() => this.inflightLookups.delete(path));
      if (this.revalidateEveryUse) p.then((entry) => this.remember(path, entry)).catch(() => {});
      this.inflightLookups.set(path, p);
    }
    return p;
  }

  private remember(path: string, entry: Entry | undefined): void {
    const now = Date.now();
    if (this.justFound.size >= JUST_FOUND_MAX) {
      for (const [k, v] of this.justFound) if (now - v.at > JUST_FOUND_MS) this.justFound.delete(k);
      if (this.justFound.size >= JUST_FOUND_MAX) this.justFound.clear();
    }
    this.justFound.delete(path); // re-insert: the map stays in age order
    this.justFound.set(path, { entry, at: now });
  }

  /** Forgets what is known about one path (e.g. an open found the object changed). */
  invalidate(path: string): void {
    this.justFound.delete(path);
    this.types.delete(path);
    this.stats.delete(pathToKey(this.prefix, path));
    this.lists.delete(parentPath(path));
  }

  /**
   * What a write made: `path` is now the file `meta`, or a file whose metadata the next lookup asks
   * for (one HEAD) when the write's answer cannot be trusted to be what HEAD says. Its directory's
   * listing is fetched again.
   */
  fileWritten(path: string, meta: ObjectMeta | undefined): void {
    this.justFound.delete(path);
    this.types.set(path, 'file');
    if (meta) {
      this.stats.set(meta.key, meta);
      this.headAt.set(meta, Date.now()); // the store's answer to our own write: as good as a HEAD
    } else this.stats.delete(pathToKey(this.prefix, path));
    this.relist(path, meta ? { type: 'file', meta } : 'unknown');
  }

  /** A symbolic link made here (symlink, rename): `path` is the link object `meta`. */
  linkMade(path: string, meta: ObjectMeta): void {
    this.justFound.delete(path);
    this.types.set(path, 'symlink');
    this.stats.set(meta.key, meta);
    this.relist(path, { type: 'symlink', meta });
  }

  /**
   * A directory made here: by mkdir, empty as this mount knows (files made in it then cost no lookup
   * request), or by a rename, whose listing the next readdir asks for.
   */
  dirMade(path: string, empty: boolean): void {
    this.justFound.delete(path);
    this.types.set(path, 'dir');
    if (empty) this.lists.set(path, []);
    this.relist(path, DIR);
  }

  /** Nothing is at `path` any more (unlink, rmdir, the source of a rename). */
  removed(path: string): void {
    this.justFound.delete(path);
    this.stats.delete(pathToKey(this.prefix, path));
    this.stats.delete(linkKey(pathToKey(this.prefix, path)));
    this.types.set(path, 'absent', this.negativeTtl);
    this.lists.delete(path);
    this.relist(path, undefined);
  }

  /**
   * Puts a local change into the cached listing of the parent, if there is one, for the time that
   * listing has left (undefined: the name is gone; 'unknown': drop the listing, the next readdir
   * asks). Listings past RELIST_MAX entries are dropped instead: each change copies the listing.
   */
  private relist(path: string, entry: Entry | undefined | 'unknown'): void {
    const parent = parentPath(path);
    const listing = this.lists.peek(parent);
    if (!listing) return;
    if (entry === 'unknown' || listing.length > RELIST_MAX) {
      this.lists.delete(parent);
      return;
    }
    const name = baseName(path);
    const next = listing.filter((e) => e.name !== name);
    if (entry) next.push({ name, entry });
    if (!this.lists.replace(parent, next)) this.lists.delete(parent);
  }

  /** The object `key` is removed here but deleted later (pending-delete.ts): absent until `deleted`. */
  deletingLater(key: string): void {
    this.deleting.add(key);
  }

  /** The delete noted by `deletingLater` is done (or failed: what the store has is what is there). */
  deleted(key: string): void {
    this.deleting.delete(key);
  }

  /** A store answer for `key`, unless the key is removed here and deleted later. */
  private shown(meta: ObjectMeta | undefined): ObjectMeta | undefined {
    return meta && this.deleting.size > 0 && this.deleting.has(meta.key) ? undefined : meta;
  }

  /** Nothing is at `path` nor under it any more (a directory renamed away). */
  removedTree(path: string): void {
    this.removed(path);
    this.types.deleteUnder(`${path}/`);
    this.lists.deleteUnder(`${path}/`);
    this.stats.deleteUnder(`${pathToKey(this.prefix, path)}/`);
    for (const p of this.justFound.keys()) if (p.startsWith(`${path}/`)) this.justFound.delete(p);
  }

  /**
   * The version of the file at `path` now, asked of the store (one HEAD), whatever the caches say:
   * a write replaces only the version the store holds, not one the stat cache remembers.
   */
  async currentFile(path: string, signal?: AbortSignal): Promise<ObjectMeta | undefined> {
    const meta = this.shown(await this.store.head(pathToKey(this.prefix, path), signal));
    if (meta) this.rememberFile(path, meta);
    else this.removed(path);
    return meta;
  }

  /** The key of a path under the mount's prefix. */
  keyOf(path: string): string {
    return pathToKey(this.prefix, path);
  }

  private fromCache(path: string): Entry | undefined | 'unknown' {
    const type = this.types.get(path);
    if (type === 'absent') return undefined;
    if (type === 'dir') return DIR;
    if (type === 'file' || type === 'symlink') {
      const key = pathToKey(this.prefix, path);
      const meta = this.stats.get(type === 'file' ? key : linkKey(key));
      if (meta) return { type, meta };
    }
    // A cached listing of the parent answers for its children without a request.
    const siblings = this.lists.peek(parentPath(path));
    if (siblings) return indexOf(siblings).get(baseName(path));
    return 'unknown';
  }

  private async fetchEntry(path: string, signal?: AbortSignal): Promise<Entry | undefined> {
    const key = pathToKey(this.prefix, path);
    const problem = nameProblem(baseName(path));
    if (problem) return undefined;
    const known = this.types.peek(path);
    if (known === 'file') {
      // Type known, metadata expired: one HEAD is enough.
      const meta = this.shown(await this.store.head(key, signal));
      if (meta) return this.rememberFile(path, meta);
    } else if (known === 'symlink') {
      const meta = await this.store.head(linkKey(key), signal);
      if (meta) return this.rememberLink(path, meta);
    }
    const [head, list] = await Promise.allSettled([
      this.store.head(key, signal),
      this.store.list(`${key}/`, { delimiter: '/', limit: 1 }, signal),
    ]);
    // A directory wins, even when the HEAD of the same name was refused.
    if (list.status === 'fulfilled' && (list.value.objects.length > 0 || list.value.prefixes.length > 0)) {
      this.types.set(path, 'dir');
      return DIR;
    }
    if (head.status === 'rejected') throw head.reason;
    if (list.status === 'rejected') throw list.reason;
    const meta = this.shown(head.value);
    if (meta) return this.rememberFile(path, meta);
    // Neither a file nor a directory: a link, or nothing (a miss costs one HEAD more, after the two).
    const link = await this.store.head(linkKey(key), signal);
    if (link) return this.rememberLink(path, link);
    this.types.set(path, 'absent', this.negativeTtl);
    return undefined;
  }

  private rememberLink(path: string, meta: ObjectMeta): Entry {
    this.types.set(path, 'symlink');
    this.stats.set(meta.key, meta);
    return { type: 'symlink', meta };
  }

  /**
   * The version of the file at `path` that a write replaces: `known` (what a lookup found) when a
   * HEAD gave it just now, else asked of the store (currentFile).
   */
  currentFor(path: string, known: ObjectMeta, signal?: AbortSignal): Promise<ObjectMeta | undefined> {
    const at = this.headAt.get(known);
    if (at !== undefined && Date.now() - at <= CURRENT_FOR_WRITE_MS) return Promise.resolve(known);
    return this.currentFile(path, signal);
  }

  private rememberFile(path: string, meta: ObjectMeta): Entry {
    this.headAt.set(meta, Date.now());
    this.types.set(path, 'file');
    this.stats.set(meta.key, meta);
    return { type: 'file', meta };
  }

  /** Every child of a directory, paging through LIST with a delimiter. */
  readdir(path: string, signal?: AbortSignal): Promise<DirEntry[]> {
    const cached = this.lists.get(path);
    if (cached) return Promise.resolve(cached);
    let p = this.inflightLists.get(path);
    if (!p) {
      p = this.fetchListing(path, signal).finally(() => this.inflightLists.delete(path));
      this.inflightLists.set(path, p);
    }
    return p;
  }

  private async fetchListing(path: string, signal?: AbortSignal): Promise<DirEntry[]> {
    const dirKey = dirPrefix(this.prefix, path);
    const dir = new DirBuilder(dirKey, this.skipped);
    let token: string | undefined;
    do {
      const page = await this.store.list(dirKey, { delimiter: '/', token, limit: 1000 }, signal);
      for (const p of page.prefixes) dir.addDir(p.slice(dirKey.length, -1), p);
      for (const o of page.objects) {
        // The directory's own marker is not a child, nor an object removed here and deleted later.
        if (o.key !== dirKey && this.shown(o)) dir.addFile(o.key.slice(dirKey.length), o);
      }
      token = page.next;
    } while (token);
    return this.commitListing(path, dir);
  }

  /** Caches a complete directory listing and what it says about each child. */
  commitListing(path: string, dir: DirBuilder): DirEntry[] {
    const entries: DirEntry[] = [];
    for (const name of dir.dirs) {
      entries.push({ name, entry: DIR });
      this.types.set(joinPath(path, name), 'dir');
    }
    for (const [name, meta] of dir.files) {
      if (dir.dirs.has(name)) continue; // the directory shadows the object of the same name
      entries.push({ name, entry: { type: 'file', meta } });
      this.types.set(joinPath(path, name), 'file');
      this.stats.set(meta.key, meta);
    }
    for (const [name, meta] of dir.links) {
      if (dir.dirs.has(name) || dir.files.has(name)) continue; // a file or directory shadows the link
      entries.push({ name, entry: { type: 'symlink', meta } });
      this.types.set(joinPath(path, name), 'symlink');
      this.stats.set(meta.key, meta);
    }
    this.lists.set(path, entries);
    return entries;
  }

  /** The key prefix of the mount root. */
  get rootPrefix(): string {
    return this.prefix;
  }

  get skippedKeys(): SkippedKeyLog {
    return this.skipped;
  }
}

/** Collects one directory's children from listing pages, skipping keys that cannot be names. */
export class DirBuilder {
  readonly dirs = new Set<string>();
  readonly files = new Map<string, ObjectMeta>();
  /** Symbolic links by name (their objects' names less SYMLINK_SUFFIX). */
  readonly links = new Map<string, ObjectMeta>();
  readonly dirKey: string;
  private readonly skipped: SkippedKeyLog;

  constructor(dirKey: string, skipped: SkippedKeyLog) {
    this.dirKey = dirKey;
    this.skipped = skipped;
  }

  /** Returns false (and warns once) when the name cannot be a directory name. */
  addDir(name: string, key: string): boolean {
    const problem = nameProblem(name);
    if (problem) {
      this.skipped.warn(key, problem);
      return false;
    }
    this.dirs.add(name);
    return true;
  }

  addFile(name: string, meta: ObjectMeta): void {
    const link = name.length > SYMLINK_SUFFIX.length && name.endsWith(SYMLINK_SUFFIX);
    const shown = link ? name.slice(0, -SYMLINK_SUFFIX.length) : name;
    const problem = nameProblem(shown);
    if (problem) this.skipped.warn(meta.key, problem);
    else (link ? this.links : this.files).set(shown, meta);
  }
}

/** The key of the object that holds the symbolic link at `key`. */
export function linkKey(key: string): string {
  return `${key}${SYMLINK_SUFFIX}`;
}
