// The training simulator's synthetic data set, in its two layouts from the same samples:
// unsharded (train/files/dNN/sample-NNNNNN.bin, one object per sample) and tar shards in
// WebDataset's layout (train/shards/shard-NNNN.tar: the samples in order, each a tar member).

export interface TrainSet {
  samples: number;
  /** Unsharded samples are spread over this many directories. */
  dirs: number;
  minBytes: number;
  maxBytes: number;
  /** A shard is closed once it holds at least this many bytes. */
  shardBytes: number;
}

export const FILES_ROOT = 'train/files';
export const SHARDS_ROOT = 'train/shards';

/** Sample i's size: fixed per index (the same for every client and layout), in [min, max]. */
export function sampleBytes(t: TrainSet, i: number): number {
  const x = Math.sin(i * 12.9898) * 43758.5453;
  return t.minBytes + Math.floor((x - Math.floor(x)) * (t.maxBytes - t.minBytes + 1));
}

function sampleName(i: number): string {
  return `sample-${String(i).padStart(6, '0')}.bin`;
}

function body(pool: Buffer, i: number, size: number): Buffer {
  const off = (i * 4099) % (pool.length - size);
  return pool.subarray(off, off + size);
}

export function* sampleObjects(t: TrainSet, pool: Buffer): Generator<[string, Buffer]> {
  for (let i = 0; i < t.samples; i++) {
    yield [`${FILES_ROOT}/d${String(i % t.dirs).padStart(2, '0')}/${sampleName(i)}`, body(pool, i, sampleBytes(t, i))];
  }
}

/** A ustar header for a regular file (the fields a tar reader needs, checksum included). */
function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'ascii');
  h.write('0000644\0', 100, 'ascii');
  h.write('0000000\0', 108, 'ascii');
  h.write('0000000\0', 116, 'ascii');
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'ascii');
  h.write('00000000000\0', 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write('0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

export function* shardObjects(t: TrainSet, pool: Buffer): Generator<[string, Buffer]> {
  let parts: Buffer[] = [];
  let bytes = 0;
  let shard = 0;
  const flush = (): [string, Buffer] => {
    parts.push(Buffer.alloc(1024)); // two zero blocks end a tar
    const out: [string, Buffer] = [
      `${SHARDS_ROOT}/shard-${String(shard++).padStart(4, '0')}.tar`,
      Buffer.concat(parts),
    ];
    parts = [];
    bytes = 0;
    return out;
  };
  for (let i = 0; i < t.samples; i++) {
    const size = sampleBytes(t, i);
    parts.push(tarHeader(sampleName(i), size), body(pool, i, size), Buffer.alloc((512 - (size % 512)) % 512));
    bytes += 512 + size;
    if (bytes >= t.shardBytes) yield flush();
  }
  if (bytes > 0) yield flush();
}
