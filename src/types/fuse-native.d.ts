// Types for the parts of fuse-native 2.2.6 bucketfs uses (the package ships none).
declare module 'fuse-native' {
  type Cb<T extends unknown[] = []> = (err: number, ...rest: T) => void;
  export interface FuseOps {
    init?(cb: Cb): void;
    getattr?(path: string, cb: Cb<[unknown?]>): void;
    fgetattr?(path: string, fd: number, cb: Cb<[unknown?]>): void;
    readdir?(path: string, cb: Cb<[string[]?, unknown[]?]>): void;
    open?(path: string, flags: number, cb: Cb<[number?]>): void;
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void;
    release?(path: string, fd: number, cb: Cb): void;
    statfs?(path: string, cb: Cb<[unknown?]>): void;
    [op: string]: unknown;
  }
  export interface FuseOpts {
    timeout?: number | false | Record<string, number | false>;
    [opt: string]: unknown;
  }
  export default class Fuse {
    constructor(mnt: string, ops: FuseOps, opts?: FuseOpts);
    mnt: string;
    opts: FuseOpts;
    /** The operations given to the constructor. */
    ops: FuseOps;
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    _fuseOptions(): string;
    /** The per-mount native state, allocated at mount (null before). */
    _thread: Buffer | null;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
  }
}
