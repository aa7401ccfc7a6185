// Which object keys can appear as POSIX names, and the mapping between mount paths and keys.
// Keys that cannot be a name (".", "..", empty segments from "//", over 255 bytes) are skipped
// with one warning per key, as Mountpoint does, instead of failing the whole listing.
import type { Logger } from '../log.js';

export const NAME_MAX_BYTES = 255;

/**
 * A symbolic link is an object named after it plus this suffix, holding the link's target: rclone's
 * convention (`rclone --links`), so links made by either tool are links to the other. A name alone
 * in a listing says what it is, without a HEAD per object (S3 listings carry no user metadata).
 */
export const SYMLINK_SUFFIX = '.rclonelink';

export type NameProblem = 'empty' | 'dot' | 'too-long' | 'nul';

export function nameProblem(name: string): NameProblem | undefined {
  if (name === '') return 'empty';
  if (name === '.' || name === '..') return 'dot';
  if (name.includes('\0')) return 'nul';
  if (Buffer.byteLength(name) > NAME_MAX_BYTES) return 'too-long';
  return undefined;
}

const REASONS: Record<NameProblem, string> = {
  empty: 'it has an empty path segment ("//" or a leading "/")',
  dot: 'a path segment is "." or ".."',
  nul: 'it contains a NUL byte',
  'too-long': `a path segment is longer than ${NAME_MAX_BYTES} bytes`,
};

/** Warns once per key; remembers a bounded number of keys so a huge bucket cannot grow it. */
export class SkippedKeyLog {
  private readonly seen = new Set<string>();
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log;
  }

  warn(key: string, problem: NameProblem): void {
    if (this.seen.has(key)) return;
    if (this.seen.size >= 10_000) this.seen.clear();
    this.seen.add(key);
    this.log.warn({ key, problem }, `skipping key: ${REASONS[problem]}`);
  }
}

/** Mount path ("/a/b") to the key it names under the mount prefix ("prefix/a/b"). */
export function pathToKey(prefix: string, path: string): string {
  return prefix + path.slice(1);
}

/** Key prefix holding a directory's children: "prefix/" for "/", "prefix/a/b/" for "/a/b". */
export function dirPrefix(prefix: string, path: string): string {
  return path === '/' ? prefix : `${prefix}${path.slice(1)}/`;
}

export function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

export function parentPath(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
