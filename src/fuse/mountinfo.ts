// What /proc/self/mountinfo says about mounts: where they are and which device backs them.
import { readFile } from 'node:fs/promises';

/**
 * Mount point (field 5, octal escapes decoded) → device "major:minor" (field 3). A path mounted
 * over twice keeps the last line's device: the mount on top, the one a path lookup reaches.
 */
export function parseMountInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const [device, where] = [fields[2], fields[4]];
    if (!device || !where) continue;
    out.set(
      where.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))),
      device,
    );
  }
  return out;
}

/** This process's view of the mounts (empty when /proc is not there). */
export async function mountInfo(): Promise<Map<string, string>> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8').catch(() => ''));
}
