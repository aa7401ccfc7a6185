// The priority of the thread that answers every FUSE request. fuse-native hands each request from
// libfuse's worker threads to Node's main thread and waits: every reader of the mount queues behind
// that one thread. With 16 readers on two cores it was runnable but waiting for a CPU 25-29% of the
// time, behind the readers, libuv's pool and libfuse's workers. At nice -15 that wait fell to 18%
// and epoch 2 of 10,000 small cached files read ~10% faster, 16 readers from the store ~18% faster
// (docs/architecture.md, "The event loop's priority"). Linux keeps the nice value per thread, and
// setpriority(PRIO_PROCESS, 0) changes the calling thread only; a thread starts with its creator's
// value, so this runs once the threads the main thread starts (libuv's pool, libfuse's loop) exist.
import { stat } from 'node:fs/promises';
import os from 'node:os';
import { describe } from '../errors.js';

export type PriorityOutcome = { raised: number } | { refused: string } | { left: true };

/**
 * Sets the calling thread's nice value to `nice` (0: leaves it alone). Call it on the main thread,
 * once mounted. Never throws: without root (CAP_SYS_NICE) it reports why it could not.
 */
export async function raiseEventLoopPriority(
  nice: number,
  setPriority: (priority: number) => void = (p) => os.setPriority(p),
): Promise<PriorityOutcome> {
  if (nice === 0) return { left: true };
  // libuv starts all its pool threads with its first job: let that happen at the normal priority.
  await stat(process.execPath).catch(() => undefined);
  try {
    setPriority(nice);
    return { raised: nice };
  } catch (err) {
    return { refused: describe(err) };
  }
}
