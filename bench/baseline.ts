/**
 * Baselines: the simplest correct implementations, written the obvious way (no early exits, no
 * caches, capability lists walked on every question). The optimised model must beat them.
 */
import type { PciDev } from "../src/pci/device.js";
import { PCI_ACS_CR, PCI_ACS_EC, PCI_ACS_RR } from "../src/pci/regs.js";

function upstream(d: PciDev): PciDev | null {
  return (d.isVirtfn && d.physfn ? d.physfn : d).bus.self;
}

function chain(d: PciDev): PciDev[] {
  const out: PciDev[] = [];
  for (let x: PciDev | null = d; x; x = upstream(x)) out.push(x);
  return out;
}

/** ACS ctrl by walking the extended capability list from scratch. */
function acsRedirect(d: PciDev): boolean {
  const cfg = d.config;
  let ptr = 0x100;
  for (let i = 0; i < 64 && ptr >= 0x100; i++) {
    const hdr = cfg.read32(ptr);
    if (hdr === 0 || hdr === 0xffffffff) return false;
    if ((hdr & 0xffff) === 0x000d)
      return (cfg.read16(ptr + 6) & (PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC)) !== 0;
    ptr = (hdr >>> 20) & 0xffc;
  }
  return false;
}

/** Naive map type: full chains, common ancestor by search, then ACS over both halves. */
export function naiveMapType(p: PciDev, c: PciDev, allowListed: (d: PciDev) => boolean): string {
  const pc = chain(p);
  const cc = chain(c);
  const common = pc.find((x) => cc.includes(x));
  if (common) {
    const nodes = [...pc.slice(0, pc.indexOf(common) + 1), ...cc.slice(0, cc.indexOf(common))];
    if (!nodes.some(acsRedirect)) return "BUS_ADDR";
  }
  return allowListed(p) && allowListed(c) ? "THRU_HOST_BRIDGE" : "NOT_SUPPORTED";
}
