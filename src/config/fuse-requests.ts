// The size of a FUSE read request: one definition for the mount option that asks for it, the
// read-ahead window that lets the kernel send it, and the FUSE glue that reports it.

/** The largest read request the mount asks the kernel for (max_read); bucketfs's fuse-native grants it. */
export const MAX_READ_BYTES = 1024 * 1024;

/** What stock libfuse 2 grants at most, whatever max_read asks (the kernel's own read-ahead default too). */
export const STOCK_MAX_READ_BYTES = 128 * 1024;
