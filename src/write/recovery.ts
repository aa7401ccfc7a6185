// What an earlier run left in the staging directory when it did not end cleanly (kill -9, a crash,
// a power cut): uploads in parts it had open are aborted, so that their parts cost nothing; files
// removed while open, whose objects were to go at their last close, are deleted; staged files are
// reported one by one and left where they are, never deleted unread.
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { describe } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ObjectStore, Upload } from '../store/types.js';
import { finishLeftDelete, PENDING_DELETE_SUFFIX } from './pending-delete.js';
import { UPLOAD_JOURNAL_SUFFIX } from './stream-upload.js';

export async function recoverStaging(dir: string, store: ObjectStore, metrics: Metrics, log: Logger): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  let found = 0;
  for (const name of names) {
    const file = path.join(dir, name);
    if (name.endsWith(UPLOAD_JOURNAL_SUFFIX)) {
      await abortLeftUpload(file, store, log);
      continue;
    }
    if (name.endsWith(PENDING_DELETE_SUFFIX)) {
      await finishLeftDelete(store, file, log);
      continue;
    }
    found++;
    log.warn(
      { staged: file },
      `${file} holds the bytes of a file an earlier run was writing and never uploaded; bucketfs leaves it for you to recover`,
    );
  }
  metrics.stagedFilesFound.set(found);
}

async function abortLeftUpload(journal: string, store: ObjectStore, log: Logger): Promise<void> {
  let upload: Upload;
  try {
    upload = JSON.parse(await readFile(journal, 'utf8')) as Upload;
  } catch (err) {
    log.warn({ journal }, `cannot read ${journal} (${describe(err)}): an upload an earlier run left may remain`);
    return;
  }
  try {
    await store.abortUpload(upload);
    await rm(journal, { force: true });
    log.info({ key: upload.key }, `aborted the unfinished upload of ${upload.key} an earlier run left`);
  } catch (err) {
    log.warn(
      { key: upload.key, journal },
      `could not abort the unfinished upload of ${upload.key} (${describe(err)}); will try again at the next start`,
    );
  }
}
