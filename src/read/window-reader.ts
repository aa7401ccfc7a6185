// A plain read-ahead reader: sequential reads are served from one fetched window while the next
// window downloads; anything else fetches exactly what was asked. The full prefetcher with
// growing windows, parallel parts and a memory budget replaces it (src/read/prefetcher.ts).
import type { ObjectMeta, ObjectPin, ObjectStore } from '../store/types.js';
import type { FileReader } from './types.js';

interface Window {
  start: number;
  end: number;
  data: Promise<Buffer>;
}

export class WindowReader implements FileReader {
  private readonly store: ObjectStore;
  private readonly meta: ObjectMeta;
  private readonly pin: ObjectPin;
  private readonly windowBytes: number;
  private readonly abort = new AbortController();
  private current: Window | undefined;
  private next: Window | undefined;
  private lastEnd = -1;

  constructor(store: ObjectStore, meta: ObjectMeta, windowBytes: number) {
    this.store = store;
    this.meta = meta;
    this.windowBytes = windowBytes;
    this.pin = meta.generation ? { generation: meta.generation } : { etag: meta.etag };
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const end = Math.min(offset + length, this.meta.size);
    if (offset >= end) return Buffer.alloc(0);
    const sequential = offset === this.lastEnd || offset === 0;
    this.lastEnd = end;
    if (!sequential && !this.covers(this.current, offset, end) && !this.covers(this.next, offset, end)) {
      return this.fetch(offset, end).data;
    }
    if (!this.covers(this.current, offset, end)) {
      this.current = this.covers(this.next, offset, end) ? this.next : this.fetch(offset, offset + this.windowBytes);
      this.next = undefined;
    }
    const win = this.current as Window;
    if (!this.next && win.end < this.meta.size) this.next = this.fetch(win.end, win.end + this.windowBytes);
    const data = await win.data;
    return data.subarray(offset - win.start, end - win.start);
  }

  close(): void {
    this.abort.abort();
    this.current = this.next = undefined;
  }

  private covers(w: Window | undefined, start: number, end: number): boolean {
    return w !== undefined && w.start <= start && end <= w.end;
  }

  private fetch(start: number, end: number): Window {
    const clamped = Math.min(end, this.meta.size);
    const data = this.store.read(this.meta.key, { start, end: clamped }, this.pin, this.abort.signal);
    data.catch(() => {}); // observed by whoever awaits it; never an unhandled rejection
    return { start, end: clamped, data };
  }
}
