// CRC32C (Castagnoli), the checksum both stores keep and check: S3's x-amz-checksum-crc32c on
// uploads, GCS's crc32c of every object. Native (@node-rs/crc32, many GB/s on the daemon's one
// thread); undefined where the package has no binary for the platform, and then nothing is checked.
export const crc32c: ((data: Uint8Array, previous?: number) => number) | undefined = await import(
  '@node-rs/crc32'
).then(
  (m) =>
    (data: Uint8Array, previous = 0) =>
      m.crc32c(data, previous) >>> 0,
  () => undefined,
);

/** The CRC32C of `body` as both stores spell it: base64 of the big-endian 32 bits. */
export function crc32cBase64(body: Uint8Array): string | undefined {
  if (!crc32c) return undefined;
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc32c(body));
  return b.toString('base64');
}
