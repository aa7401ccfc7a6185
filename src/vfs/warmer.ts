// --warm-metadata: fills the stat, type and list caches at mount with flat listings (no delimiter,
// 1,000 keys a request) instead of the one-LIST-per-directory walk `ls -R` costs. Runs in the
// background; readers never wait for it. Keys come back in lexicographic order, so every key of a
// directory is contiguous: once the walk passes a directory's range its listing is complete and is
// cached, and memory stays bounded by the depth of the tree times the width of a directory.
import { describe } from '../errors.js';
import type { Logger } from '../log.js';
import type { ObjectMeta, ObjectStore } from '../store/types.js';
import { joinPath } from './names.js';
import { DirBuilder, type Namespace } from './namespace.js';

interface OpenDir {
  path: string;
  builder: DirBuilder;
}

export interface WarmResult {
  keys: number;
  dirs: number;
  requests: number;
  complete: boolean;
}

export async function warmMetadata(
  store: ObjectStore,
  ns: Namespace,
  log: Logger,
  signal: AbortSignal,
): Promise<WarmResult> {
  const started = Date.now();
  const prefix = ns.rootPrefix;
  const stack: OpenDir[] = [{ path: '/', builder: new DirBuilder(prefix, ns.skippedKeys) }];
  const result: WarmResult = { keys: 0, dirs: 0, requests: 0, complete: false };
  const close = (until: (d: OpenDir) => boolean): void => {
    while (stack.length > 1 && !until(stack[stack.length - 1] as OpenDir)) {
      const done = stack.pop() as OpenDir;
      ns.commitListing(done.path, done.builder);
      result.dirs++;
    }
  };
  const add = (o: ObjectMeta): void => {
    result.keys++;
    close((d) => o.key.startsWith(d.builder.dirKey));
    const segments = o.key.slice(prefix.length).split('/');
    for (let i = stack.length - 1; i < segments.length - 1; i++) {
      const parent = stack[stack.length - 1] as OpenDir;
      const name = segments[i] as string;
      const dirKey = `${parent.builder.dirKey}${name}/`;
      if (!parent.builder.addDir(name, dirKey)) return; // an unnameable segment hides the rest
      stack.push({ path: joinPath(parent.path, name), builder: new DirBuilder(dirKey, ns.skippedKeys) });
    }
    const last = segments[segments.length - 1] as string;
    if (last !== '') (stack[stack.length - 1] as OpenDir).builder.addFile(last, o);
  };
  try {
    let token: string | undefined;
    do {
      const page = await store.list(prefix, { token, limit: 1000 }, signal);
      result.requests++;
      for (const o of page.objects) add(o);
      token = page.next;
    } while (token && !signal.aborted);
    if (!signal.aborted) {
      close(() => false);
      ns.commitListing('/', (stack[0] as OpenDir).builder);
      result.dirs++;
      result.complete = true;
    }
  } catch (err) {
    // Partial warmth is fine: only directories the walk fully passed were cached.
    if (!signal.aborted) log.warn({ err: describe(err), keys: result.keys }, 'metadata warm-up stopped early');
  }
  log.info({ ...result, seconds: (Date.now() - started) / 1000 }, 'metadata warm-up finished');
  return result;
}
