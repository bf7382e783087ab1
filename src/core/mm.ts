/**
 * A user process's address space, only as far as mapping user memory for DMA needs it: a list of
 * VMAs that are either anonymous RAM (what `pin_user_pages` can pin) or PFN maps of device memory
 * (`VM_IO | VM_PFNMAP`, e.g. an mmapped VFIO BAR), which GUP refuses with -EFAULT and which only
 * `follow_pfn`-style walkers (VFIO type1) can translate.
 *
 * Modelled choices: every VMA is backed by one physically contiguous run (RAM comes from a fake
 * allocator starting at 4 GiB); a PFN map faults its PFNs in through an optional callback, which
 * throws a {@link KernelError} when the owner cannot provide them (VFIO: memory decode disabled,
 * i.e. SIGBUS → -EFAULT for the walker).
 */
import { KernelError } from "./errors.js";

export const MM_PAGE_SIZE = 4096n;

export interface Vma {
  start: bigint;
  /** Exclusive. */
  end: bigint;
  kind: "anon" | "pfnmap";
  /** Physical address backing `start`. */
  phys: bigint;
  /** Fault handler of a PFN map (vfio_pci_mmap_fault); throws when the PFN cannot be inserted. */
  fault?: () => void;
  name: string;
}

/** One physically contiguous piece of a user range. */
export interface UserRun {
  va: bigint;
  phys: bigint;
  len: bigint;
}

export class UserMm {
  private vmas: Vma[] = [];
  /** Where the next mmap without a hint is placed (bump allocator, 1 GiB aligned start). */
  private nextVa = 0x7f00_0000_0000n;
  private nextRam = 0x1_0000_0000n;

  /** `mmap`: a page-aligned VMA; with `addr` it is placed there (MAP_FIXED_NOREPLACE: -EEXIST on overlap). */
  mmap(
    len: bigint,
    o: { kind: "anon" | "pfnmap"; phys?: bigint; addr?: bigint; fault?: () => void; name?: string },
  ): Vma {
    if (len <= 0n) throw new KernelError("EINVAL", "mmap: length 0");
    const size = (len + MM_PAGE_SIZE - 1n) & ~(MM_PAGE_SIZE - 1n);
    let start = o.addr;
    if (start === undefined) {
      start = this.nextVa;
      this.nextVa += (size + (1n << 30n) - 1n) & ~((1n << 30n) - 1n);
    }
    if (start % MM_PAGE_SIZE) throw new KernelError("EINVAL", "mmap: address not page aligned");
    if (this.vmas.some((v) => v.start < start + size && start < v.end))
      throw new KernelError("EEXIST", "mmap: range already mapped");
    let phys = o.phys;
    if (phys === undefined) {
      phys = this.nextRam;
      this.nextRam += size;
    }
    const vma: Vma = { start, end: start + size, kind: o.kind, phys, fault: o.fault, name: o.name ?? o.kind };
    this.vmas.push(vma);
    this.vmas.sort((a, b) => (a.start < b.start ? -1 : 1));
    return vma;
  }

  munmap(addr: bigint): void {
    this.vmas = this.vmas.filter((v) => v.start !== addr);
  }

  findVma(va: bigint): Vma | undefined {
    return this.vmas.find((v) => v.start <= va && va < v.end);
  }

  /**
   * `pin_user_pages(va, len)`: RAM only. A hole or a `VM_IO | VM_PFNMAP` VMA anywhere in the range
   * fails the whole pin with -EFAULT.
   */
  pinUserPages(va: bigint, len: bigint): UserRun[] {
    return this.walk(va, len, (vma) => {
      if (vma.kind !== "anon")
        throw new KernelError("EFAULT", `pin_user_pages: ${vma.name} is VM_IO|VM_PFNMAP`, "K-174");
    });
  }

  /**
   * The type1 fallback for PFN maps (`follow_fault_pfn`): each VMA is faulted in, then read back.
   * A hole fails with -EFAULT.
   */
  followPfns(va: bigint, len: bigint): UserRun[] {
    return this.walk(va, len, (vma) => vma.fault?.());
  }

  private walk(va: bigint, len: bigint, check: (vma: Vma) => void): UserRun[] {
    const runs: UserRun[] = [];
    const end = va + len;
    let pos = va;
    while (pos < end) {
      const vma = this.findVma(pos);
      if (!vma) throw new KernelError("EFAULT", `no VMA at user address 0x${pos.toString(16)}`);
      check(vma);
      let stop = end;
      if (vma.end < stop) stop = vma.end;
      runs.push({ va: pos, phys: vma.phys + (pos - vma.start), len: stop - pos });
      pos = stop;
    }
    return runs;
  }
}

const mms = new WeakMap<object, UserMm>();

/** The address space of the user process of `owner` (one per machine). */
export function userMm(owner: object): UserMm {
  let mm = mms.get(owner);
  if (!mm) {
    mm = new UserMm();
    mms.set(owner, mm);
  }
  return mm;
}
