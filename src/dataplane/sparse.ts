/**
 * A sparse byte store: 4 KiB pages allocated on first write, zeros everywhere else. Offsets are
 * bigints so one store can stand for a 128 GiB BAR or the whole physical address space.
 */
import { InputError } from "../core/errors.js";

export const STORE_PAGE = 4096;
const PAGE = BigInt(STORE_PAGE);

export class SparseBytes {
  private readonly pages = new Map<bigint, Uint8Array>();

  /** @param size bytes addressable (offsets at or above it are refused); null = 2^64. */
  constructor(readonly size: bigint | null = null) {}

  private check(offset: bigint, length: number, what: string): void {
    if (!Number.isSafeInteger(length) || length < 0)
      throw new InputError(`${what}: length ${length} is not a byte count`);
    const limit = this.size ?? 1n << 64n;
    if (offset < 0n || offset + BigInt(length) > limit)
      throw new InputError(
        `${what}: [0x${offset.toString(16)}, +${length}) is outside the store (size 0x${limit.toString(16)})`,
      );
  }

  read(offset: bigint, length: number): Uint8Array {
    this.check(offset, length, "read");
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const a = offset + BigInt(done);
      const page = a / PAGE;
      const within = Number(a % PAGE);
      const n = Math.min(length - done, STORE_PAGE - within);
      const p = this.pages.get(page);
      if (p) out.set(p.subarray(within, within + n), done);
      done += n;
    }
    return out;
  }

  write(offset: bigint, data: Uint8Array): void {
    this.check(offset, data.length, "write");
    let done = 0;
    while (done < data.length) {
      const a = offset + BigInt(done);
      const page = a / PAGE;
      const within = Number(a % PAGE);
      const n = Math.min(data.length - done, STORE_PAGE - within);
      let p = this.pages.get(page);
      if (!p) {
        p = new Uint8Array(STORE_PAGE);
        this.pages.set(page, p);
      }
      p.set(data.subarray(done, done + n), within);
      done += n;
    }
  }

  /** Pages allocated so far (each was written at least once). */
  get pagesAllocated(): number {
    return this.pages.size;
  }

  /** Offsets of the allocated pages, ascending. */
  allocatedPages(): bigint[] {
    return [...this.pages.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((p) => p * PAGE);
  }

  clear(): void {
    this.pages.clear();
  }
}
