import { PCI_CAPABILITY_LIST, PCI_STATUS, PCI_STATUS_CAP_LIST } from "./regs.js";

export interface CapabilityRef {
  id: number;
  offset: number;
  /** Extended capabilities carry a 4-bit version. */
  version?: number;
}

/**
 * A function's configuration space: 256 bytes for conventional PCI, 4096 for PCIe; 64 when a
 * source only had the standard header. Little-endian like the hardware. Capability walks
 * tolerate malformed lists from real dumps (loops, pointers into the header) by stopping.
 */
export class ConfigSpace {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private capsCache: CapabilityRef[] | undefined;
  private extCapsCache: CapabilityRef[] | undefined;

  constructor(sizeOrBytes: number | Uint8Array = 4096) {
    this.bytes = typeof sizeOrBytes === "number" ? new Uint8Array(sizeOrBytes) : sizeOrBytes;
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  get size(): number {
    return this.bytes.length;
  }

  /** Reads past the end return all-ones, as a master abort on a real bus does. */
  read8(off: number): number {
    return off + 1 <= this.bytes.length ? this.view.getUint8(off) : 0xff;
  }
  read16(off: number): number {
    return off + 2 <= this.bytes.length ? this.view.getUint16(off, true) : 0xffff;
  }
  read32(off: number): number {
    return off + 4 <= this.bytes.length ? this.view.getUint32(off, true) : 0xffffffff;
  }
  write8(off: number, v: number): void {
    if (off + 1 <= this.bytes.length) this.view.setUint8(off, v & 0xff);
  }
  write16(off: number, v: number): void {
    if (off + 2 <= this.bytes.length) this.view.setUint16(off, v & 0xffff, true);
  }
  write32(off: number, v: number): void {
    if (off + 4 <= this.bytes.length) this.view.setUint32(off, v >>> 0, true);
  }

  /** Standard capabilities in list order. */
  capabilities(): CapabilityRef[] {
    if (this.capsCache) return this.capsCache;
    const out: CapabilityRef[] = [];
    if (this.bytes.length >= 0x40 && this.read16(PCI_STATUS) & PCI_STATUS_CAP_LIST) {
      const seen = new Set<number>();
      let ptr = this.read8(PCI_CAPABILITY_LIST) & 0xfc;
      while (ptr >= 0x40 && ptr + 2 <= Math.min(this.bytes.length, 256) && !seen.has(ptr)) {
        seen.add(ptr);
        const id = this.read8(ptr);
        if (id === 0xff) break;
        out.push({ id, offset: ptr });
        ptr = this.read8(ptr + 1) & 0xfc;
      }
    }
    this.capsCache = out;
    return out;
  }

  /** Extended capabilities (offset 0x100 and up) in list order; none in a 256-byte space. */
  extCapabilities(): CapabilityRef[] {
    if (this.extCapsCache) return this.extCapsCache;
    const out: CapabilityRef[] = [];
    if (this.bytes.length > 0x100) {
      const seen = new Set<number>();
      let ptr = 0x100;
      while (ptr >= 0x100 && ptr + 4 <= this.bytes.length && !seen.has(ptr)) {
        seen.add(ptr);
        const hdr = this.read32(ptr);
        if (hdr === 0 || hdr === 0xffffffff) break;
        out.push({ id: hdr & 0xffff, version: (hdr >>> 16) & 0xf, offset: ptr });
        ptr = (hdr >>> 20) & 0xffc;
      }
    }
    this.extCapsCache = out;
    return out;
  }

  findCapability(id: number): number {
    return this.capabilities().find((c) => c.id === id)?.offset ?? 0;
  }
  findExtCapability(id: number): number {
    return this.extCapabilities().find((c) => c.id === id)?.offset ?? 0;
  }

  /** Capability layout changed (a builder appended one): forget the cached walks. */
  invalidateCapabilityCache(): void {
    this.capsCache = undefined;
    this.extCapsCache = undefined;
  }

  clone(): ConfigSpace {
    return new ConfigSpace(new Uint8Array(this.bytes));
  }
}
