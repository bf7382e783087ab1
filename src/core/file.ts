/**
 * Files and descriptors, as far as the model needs them: kernel objects (a dma-buf, a VFIO device)
 * are reached through a refcounted file; a process's descriptor table maps small integers to
 * files. `get_file_active` is "take a reference only if the count is still above zero".
 */
import { KernelError } from "./errors.js";

export const O_ACCMODE = 0o3;
export const O_RDWR = 0o2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;

export interface FileOps {
  /** Last reference dropped. */
  release?(file: KFile): void;
  /** Returns the ioctl's non-negative result; failures throw {@link KernelError}. */
  ioctl?(file: KFile, cmd: number, arg: UserBuffer): number;
  llseek?(file: KFile, offset: bigint, whence: number): bigint;
  mmap?(file: KFile, req: { pgoff: bigint; pages: bigint; shared: boolean }): void;
  fdinfo?(file: KFile): Record<string, string | number>;
}

export class KFile {
  refs = 1;
  constructor(
    /** What the file is ("dma-buf", "vfio-device", "eventfd" …). */
    readonly kind: string,
    readonly ops: FileOps,
    /** f_flags kept by the file (open(2) flags). */
    public flags: number,
    public priv: unknown,
  ) {}

  /** `get_file`. */
  get(): this {
    if (this.refs <= 0) throw new Error(`get_file on a released ${this.kind} file`);
    this.refs++;
    return this;
  }

  /** `get_file_active`: false for a file whose last reference is already gone. */
  getActive(): boolean {
    if (this.refs <= 0) return false;
    this.refs++;
    return true;
  }

  /** `fput`: the last reference runs `release` exactly once. */
  put(): void {
    if (this.refs <= 0) throw new Error(`fput on a released ${this.kind} file`);
    this.refs--;
    if (this.refs === 0) this.ops.release?.(this);
  }

  get released(): boolean {
    return this.refs <= 0;
  }
}

/** A process's descriptor table: an array indexed by descriptor, as the kernel's `fdtable`. */
export class FdTable {
  private readonly files: (KFile | undefined)[] = [];
  private readonly closeOnExec: boolean[] = [];
  private open = 0;
  /** `files->next_fd`: no descriptor below it is free, so the search for the lowest starts there. */
  private nextFd = 0;
  constructor(
    /** RLIMIT_NOFILE: descriptors 0 … max-1. */
    public max = 1024,
  ) {}

  /** `get_unused_fd_flags` + `fd_install`: the lowest free number; -EMFILE when full. */
  install(file: KFile, flags = 0): number {
    for (let fd = this.nextFd; fd < this.max; fd++)
      if (this.files[fd] === undefined) {
        this.files[fd] = file;
        this.closeOnExec[fd] = (flags & O_CLOEXEC) !== 0;
        this.open++;
        this.nextFd = fd + 1;
        return fd;
      }
    throw new KernelError("EMFILE", "get_unused_fd_flags: descriptor table full");
  }

  /** `fget`: -EBADF for a number that is not open. Takes a reference. */
  fget(fd: number): KFile {
    const f = this.peek(fd);
    if (!f) throw new KernelError("EBADF", `fget: descriptor ${fd} is not open`);
    return f.get();
  }

  /** The file behind `fd` without taking a reference. */
  peek(fd: number): KFile | undefined {
    // a number that is not a descriptor (negative, fractional, NaN) is simply not open
    return Number.isInteger(fd) && fd >= 0 ? this.files[fd] : undefined;
  }

  cloexec(fd: number): boolean {
    return this.peek(fd) !== undefined && this.closeOnExec[fd];
  }

  /** `close(fd)`. */
  close(fd: number): void {
    const f = this.peek(fd);
    if (!f) throw new KernelError("EBADF", `close: descriptor ${fd} is not open`);
    this.files[fd] = undefined;
    this.open--;
    if (fd < this.nextFd) this.nextFd = fd;
    f.put();
  }

  /** `ioctl(fd, cmd, arg)` (`sys_ioctl` → `vfs_ioctl`): -EBADF, -ENOTTY, or the file's own answer. */
  ioctl(fd: number, cmd: number, arg: UserBuffer): number {
    const f = this.fget(fd);
    try {
      if (!f.ops.ioctl) throw new KernelError("ENOTTY", `descriptor ${fd} (${f.kind}) has no ioctls`);
      return f.ops.ioctl(f, cmd, arg);
    } finally {
      f.put();
    }
  }

  /** Open descriptors. */
  get size(): number {
    return this.open;
  }

  /** Open descriptors and their files, lowest descriptor first. */
  entries(): [number, KFile][] {
    const out: [number, KFile][] = [];
    this.files.forEach((f, fd) => {
      if (f) out.push([fd, f]);
    });
    return out;
  }
}

/**
 * The read side of a `DataView` (little-endian flag and all): what ioctl handlers use of a struct
 * copied from user memory. A `DataView` is one; so is what {@link UserBuffer.copyFromUser} returns.
 */
export interface StructView {
  readonly byteLength: number;
  getUint8(offset: number): number;
  getUint16(offset: number, littleEndian?: boolean): number;
  getUint32(offset: number, littleEndian?: boolean): number;
  getInt32(offset: number, littleEndian?: boolean): number;
  getBigUint64(offset: number, littleEndian?: boolean): bigint;
}

/**
 * A struct copied from user memory: reads relative to its start, straight from the argument's
 * bytes (a `DataView` per copy cost more than the rest of an export). Reads past the struct throw
 * a RangeError, as a `DataView` of the struct alone would.
 */
class UserStruct implements StructView {
  constructor(
    private readonly bytes: Uint8Array,
    private readonly base: number,
    readonly byteLength: number,
  ) {}

  private at(offset: number, size: number): number {
    if (offset < 0 || offset + size > this.byteLength)
      throw new RangeError(`offset ${offset} is outside the ${this.byteLength}-byte struct`);
    return this.base + offset;
  }

  getUint8(offset: number): number {
    return this.bytes[this.at(offset, 1)];
  }
  getUint16(offset: number, littleEndian?: boolean): number {
    const i = this.at(offset, 2);
    const b = this.bytes;
    return littleEndian ? b[i] | (b[i + 1] << 8) : (b[i] << 8) | b[i + 1];
  }
  getUint32(offset: number, littleEndian?: boolean): number {
    return this.getInt32(offset, littleEndian) >>> 0;
  }
  getInt32(offset: number, littleEndian?: boolean): number {
    const i = this.at(offset, 4);
    const b = this.bytes;
    return littleEndian
      ? b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)
      : (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3];
  }
  getBigUint64(offset: number, littleEndian?: boolean): bigint {
    this.at(offset, 8);
    const lo = this.getUint32(littleEndian ? offset : offset + 4, littleEndian);
    const hi = this.getUint32(littleEndian ? offset + 4 : offset, littleEndian);
    // most fields (offsets, lengths) fit 32 bits: one bigint instead of four
    return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
  }
}

/**
 * User memory behind an ioctl argument: the bytes a C program passes (null = a pointer the kernel
 * cannot read). Copies past the end fault with -EFAULT, as `copy_from_user` does.
 */
export class UserBuffer {
  constructor(public bytes: Uint8Array | null) {}

  static of(hexOrBytes: string | Uint8Array | null): UserBuffer {
    if (hexOrBytes === null) return new UserBuffer(null);
    if (typeof hexOrBytes !== "string") return new UserBuffer(hexOrBytes);
    const clean = hexOrBytes.replace(/\s+/g, "");
    return new UserBuffer(Uint8Array.from(clean.match(/../g) ?? [], (b) => Number.parseInt(b, 16)));
  }

  get length(): number {
    return this.bytes?.length ?? 0;
  }

  /** `copy_from_user` of a struct: -EFAULT unless all of [offset, offset+len) is readable. */
  copyFromUser(offset: number, len: number, what: string): StructView {
    return new UserStruct(this.readable(offset, len, what), offset, len);
  }

  /** `copy_from_user` into a kernel buffer: the bytes of [offset, offset+len). */
  copyBytesFromUser(offset: number, len: number, what: string): Uint8Array {
    return this.readable(offset, len, what).slice(offset, offset + len);
  }

  private readable(offset: number, len: number, what: string): Uint8Array {
    const b = this.bytes;
    if (!b || offset < 0 || offset + len > b.length)
      throw new KernelError("EFAULT", `copy_from_user: ${what} (${len} bytes at +${offset}) not readable`);
    return b;
  }

  copyToUser(offset: number, data: Uint8Array, what: string): void {
    if (!this.bytes || offset < 0 || offset + data.length > this.bytes.length)
      throw new KernelError(
        "EFAULT",
        `copy_to_user: ${what} (${data.length} bytes at +${offset}) not writable`,
      );
    this.bytes.set(data, offset);
  }

  toHex(): string {
    return this.bytes ? Buffer.from(this.bytes).toString("hex") : "";
  }
}

/** `eventfd(2)`: a counter file the kernel can signal. */
export function createEventfd(fds: FdTable): number {
  return fds.install(new KFile("eventfd", {}, O_RDWR, { count: 0 }));
}
