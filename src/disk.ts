// Reads from local files (staged copies, the file cache's data files) that must not stop short:
// a FileHandle.read may return fewer bytes than asked anywhere, not only at the end of the file.
import type { FileHandle } from 'node:fs/promises';

/**
 * Reads `length` bytes at `position` of `fh` into the start of `into`, in as many reads as it
 * takes: how many it got, fewer only where the file ends.
 */
export async function readFully(fh: FileHandle, into: Buffer, length: number, position: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(into, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}
