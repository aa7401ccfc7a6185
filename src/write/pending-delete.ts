// An unlink of a file that handles still read: the name goes at once, the object when the last of
// those handles is closed, as a local file system frees an unlinked inode only then — so a reader
// opened before the rm reads its version to the end. Until then a record beside the staged files
// says what is to be deleted, so that a crash in between does not leave the delete undone: the
// next mount does it (recovery.ts).
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe } from '../errors.js';
import type { Logger } from '../log.js';
import { type ObjectMeta, type ObjectStore, sameVersion } from '../store/types.js';

export const PENDING_DELETE_SUFFIX = '.delete.json';

export interface PendingDelete {
  /** The version to delete; another one found there later (another client wrote) is left alone. */
  meta: ObjectMeta;
  /** The record on disk. */
  record: string;
}

/** Notes on disk that `meta` is to be deleted once its readers are done. */
export async function deleteLater(dir: string, meta: ObjectMeta): Promise<PendingDelete> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const safe = meta.key.replace(/[^A-Za-z0-9._-]+/g, '_').slice(-120);
  const record = path.join(
    dir,
    `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}-${safe}${PENDING_DELETE_SUFFIX}`,
  );
  await writeFile(record, JSON.stringify(meta), { mode: 0o600 });
  return { meta, record };
}

/**
 * Deletes the object if it is still the version noted (one HEAD, then the DELETE) and drops the
 * record: whether that was done. A failure keeps the record, for the next mount to try again.
 */
export async function deleteNow(store: ObjectStore, pending: PendingDelete, log: Logger): Promise<boolean> {
  const { meta, record } = pending;
  try {
    const now = await store.head(meta.key);
    if (now && sameVersion(now, meta)) await store.delete(meta.key);
    await rm(record, { force: true });
    return true;
  } catch (err) {
    log.warn(
      { key: meta.key, record },
      `could not delete ${meta.key}, removed while it was open (${describe(err)}); the next mount tries again`,
    );
    return false;
  }
}

/** The pending delete an earlier run noted in `record`, done now. */
export async function finishLeftDelete(store: ObjectStore, record: string, log: Logger): Promise<void> {
  let meta: ObjectMeta;
  try {
    meta = JSON.parse(await readFile(record, 'utf8')) as ObjectMeta;
  } catch (err) {
    log.warn({ record }, `cannot read ${record} (${describe(err)}): a file removed by an earlier run may remain`);
    return;
  }
  if (await deleteNow(store, { meta, record }, log))
    log.info({ key: meta.key }, `deleted ${meta.key}, which an earlier run removed while it was open`);
}
