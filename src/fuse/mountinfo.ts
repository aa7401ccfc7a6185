// What /proc/self/mountinfo says about mounts: where they are and which device backs them.
import { readFile } from 'node:fs/promises';

export interface MountEntry {
  /** "major:minor" (field 3). */
  device: string;
  /** The file system type after the " - " separator, e.g. "ext4" or "fuse.bucketfs". */
  fsType: string;
}

/**
 * Mount point (field 5, octal escapes decoded) → its entry. A path mounted over twice keeps the
 * last line: the mount on top, the one a path lookup reaches.
 */
export function parseMountEntries(text: string): Map<string, MountEntry> {
  const out = new Map<string, MountEntry>();
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const [device, where] = [fields[2], fields[4]];
    if (!device || !where) continue;
    // Optional fields (shared:N, ...) come before the separator, so its place varies.
    const sep = fields.indexOf('-', 6);
    const fsType = sep > 0 ? (fields[sep + 1] ?? '') : '';
    out.set(
      where.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))),
      { device, fsType },
    );
  }
  return out;
}

/** Mount point → device "major:minor" (see parseMountEntries). */
export function parseMountInfo(text: string): Map<string, string> {
  return new Map([...parseMountEntries(text)].map(([where, e]) => [where, e.device]));
}

/** This process's mountinfo text (empty when /proc is not there). */
function readMountInfo(): Promise<string> {
  return readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
}

/** This process's view of the mounts, with their types. */
export async function mountEntries(): Promise<Map<string, MountEntry>> {
  return parseMountEntries(await readMountInfo());
}

/** This process's view of the mounts: mount point → device. */
export async function mountInfo(): Promise<Map<string, string>> {
  return parseMountInfo(await readMountInfo());
}
