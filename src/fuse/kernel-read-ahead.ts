// The kernel's read-ahead for one mount. Reads through the page cache reach a FUSE file system
// as the kernel's read-ahead asks for them, in requests no larger than its window: 128 KiB by
// default, whatever the daemon negotiates (FUSE's INIT can lower the window, never raise it). With
// bucketfs's build of fuse-native a request may carry 1 MiB (src/fuse/native.ts), and a window of
// 1 MiB lets the kernel send it: a sequential GiB in 1,024 round trips through the daemon instead
// of 8,192. The window is a property of the mount's backing device (/sys/class/bdi/<dev>), which
// only root may change, and it ends with the mount.
import { readFile, writeFile } from 'node:fs/promises';
import { mountInfo } from './mountinfo.js';

const BDI_ROOT = '/sys/class/bdi';

export interface ReadAheadSet {
  /** The mount's device, major:minor. */
  device: string;
  /** The window the kernel reports after the write, in KiB. */
  kb: number;
}

/** Sets the read-ahead window of the mount at `mountpoint`; throws when it cannot (not root, no sysfs). */
export async function setKernelReadAhead(mountpoint: string, kb: number, bdiRoot = BDI_ROOT): Promise<ReadAheadSet> {
  const device = (await mountInfo()).get(mountpoint);
  if (!device) throw new Error(`${mountpoint} is not in /proc/self/mountinfo`);
  const file = `${bdiRoot}/${device}/read_ahead_kb`;
  await writeFile(file, String(kb));
  return { device, kb: Number((await readFile(file, 'utf8')).trim()) };
}
