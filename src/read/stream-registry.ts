// The open handles of each object version, so that one handle's read-ahead can stop where another
// handle's stream began. Several readers splitting one object between them (fio's seq-4t: four
// threads, one quarter each; a data loader's workers sharing a shard) otherwise each fetch a full
// window past the end of their share: bytes another handle has already fetched, and that this one
// never reads. With a 128 MiB window that was 1.17x the object's bytes over 2 GiB read in quarters.
// A handle that closes while others of the object are still open leaves its origin behind (the
// reader of the last quarter is done before the one of the third reaches it); the object's entry
// goes when its last handle closes.

/** Origins kept per object for closed handles; the oldest go first. */
const MAX_ENDED = 64;

/** What a handle tells its siblings: where its current stream began, if it has one. */
export interface StreamMember {
  readonly origin: number | undefined;
}

/** The handles of one object version. */
export interface Siblings<T extends StreamMember> {
  readonly open: Set<T>;
  /** Origins of streams whose handles have closed while others were open. */
  readonly ended: number[];
}

export class StreamRegistry<T extends StreamMember> {
  private readonly byObject = new Map<string, Siblings<T>>();

  /** Adds `member` to the handles of `object` (key and version); returns what it shares with them. */
  join(object: string, member: T): Siblings<T> {
    let siblings = this.byObject.get(object);
    if (!siblings) {
      siblings = { open: new Set(), ended: [] };
      this.byObject.set(object, siblings);
    }
    siblings.open.add(member);
    return siblings;
  }

  /** Call before the member forgets its stream: its origin stays while other handles are open. */
  leave(object: string, member: T): void {
    const siblings = this.byObject.get(object);
    if (!siblings?.open.delete(member)) return;
    if (siblings.open.size === 0) this.byObject.delete(object);
    else if (member.origin !== undefined) {
      siblings.ended.push(member.origin);
      // A long-lived handle beside many short ones must not make this grow without bound.
      if (siblings.ended.length > MAX_ENDED) siblings.ended.shift();
    }
  }

  /** Number of objects with an open handle (for tests). */
  get objects(): number {
    return this.byObject.size;
  }
}

/**
 * The nearest origin of another stream of the object at or after `from` and past `after` (where
 * this handle's own stream began: streams that began at or before it are not shares ahead of it,
 * such as two readers of a whole file): read-ahead stops there. Infinity when there is none.
 */
export function nextOrigin<T extends StreamMember>(
  siblings: Siblings<T> | undefined,
  self: T,
  from: number,
  after: number,
): number {
  let limit = Number.POSITIVE_INFINITY;
  if (!siblings) return limit;
  const bound = Math.max(from, after + 1);
  for (const m of siblings.open) {
    const origin = m.origin;
    if (m !== self && origin !== undefined && origin >= bound && origin < limit) limit = origin;
  }
  for (const origin of siblings.ended) if (origin >= bound && origin < limit) limit = origin;
  return limit;
}
