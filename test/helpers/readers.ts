// Reading a FileReader the way tests want it: the bytes, in a buffer of their own.
import type { FileReader } from '../../src/read/types.js';

/** The bytes a read at `offset` gives, in a new buffer (fewer than `length` only at the end). */
export async function readBytes(r: Pick<FileReader, 'read'>, offset: number, length: number): Promise<Buffer> {
  const into = Buffer.alloc(length);
  const copied = await r.read(offset, length, into);
  return into.subarray(0, copied);
}
