/**
 * The bytes of the user process that uverbs pointer attributes point at (output buffers for keys
 * and paths, input buffers longer than 8 bytes). A small allocator of separate regions: any access
 * that does not fall entirely inside one region faults, as `copy_to_user` / `copy_from_user` do.
 */
import { KernelError } from "../core/errors.js";

interface Region {
  addr: bigint;
  bytes: Uint8Array;
}

export class UserMemory {
  private readonly regions = new Map<bigint, Region>();
  /** Bump allocator; regions are 64-byte aligned and never reused, so stale pointers fault. */
  private next = 0x5555_0000_0000n;

  alloc(len: number, init?: Uint8Array): bigint {
    const addr = this.next;
    this.next += BigInt(Math.max(64, (len + 63) & ~63)) + 64n; // a gap between regions
    const bytes = new Uint8Array(len);
    if (init) bytes.set(init.subarray(0, len));
    this.regions.set(addr, { addr, bytes });
    return addr;
  }

  free(addr: bigint): void {
    this.regions.delete(addr);
  }

  private find(addr: bigint, len: number): { r: Region; off: number } | null {
    for (const r of this.regions.values()) {
      const end = r.addr + BigInt(r.bytes.length);
      if (addr >= r.addr && addr + BigInt(len) <= end) return { r, off: Number(addr - r.addr) };
    }
    return null;
  }

  /** `copy_from_user`. */
  read(addr: bigint, len: number, what: string): Uint8Array {
    const f = this.find(addr, len);
    if (!f)
      throw new KernelError("EFAULT", `copy_from_user: ${what} (${len} bytes at 0x${addr.toString(16)})`);
    return f.r.bytes.slice(f.off, f.off + len);
  }

  /** `copy_to_user`. */
  write(addr: bigint, data: Uint8Array, what: string): void {
    const f = this.find(addr, data.length);
    if (!f)
      throw new KernelError(
        "EFAULT",
        `copy_to_user: ${what} (${data.length} bytes at 0x${addr.toString(16)})`,
      );
    f.r.bytes.set(data, f.off);
  }

  /** The live bytes of a region (what the program sees), undefined for a freed or unknown address. */
  view(addr: bigint): Uint8Array | undefined {
    return this.regions.get(addr)?.bytes;
  }
}
