/**
 * Decodes a function's configuration space into the fields that matter for P2P, with the
 * names and rules `lspci -vvv` uses (pciutils 3.9): a field is present here exactly when lspci
 * would print it for the same bytes, and reads past the bytes a source had (`length`) are
 * treated as unreadable, as lspci does with a dump.
 *
 * Pure: bytes in, plain object out. Nothing here throws for any input.
 */
import { ACS_BIT_NAMES, type AcsBitName, LINK_SPEED_GTS } from "./regs.js";

/** Something with config bytes: a {@link ConfigSpace} or a raw byte array. */
export interface ConfigBytes {
  readonly bytes: Uint8Array;
}

export interface CapabilityEntry {
  id: number;
  offset: number;
  /** lspci's heading for this capability (the stable part, before any details). */
  name: string;
}

export interface ExtCapabilityEntry extends CapabilityEntry {
  version: number;
}

export interface DecodedHeader {
  vendor: number;
  device: number;
  revision: number;
  /** 24-bit class code: base class, sub class, programming interface. */
  classCode: number;
  progIf: number;
  /** Header layout: 0 normal, 1 PCI-to-PCI bridge, 2 CardBus bridge. */
  headerType: number;
  multifunction: boolean;
  /** lspci "Control:" */
  command: { io: boolean; mem: boolean; busMaster: boolean; disIntx: boolean };
  /** lspci "Status:" — Cap+ means a capability list is present. */
  status: { cap: boolean };
  /** Type 0: the header's Subsystem ids (type 1 bridges carry them in a capability). */
  subsystem: { vendor: number; device: number } | null;
  /** lspci "Bus: primary=… secondary=… subordinate=… sec-latency=…" (bridges). */
  bus: { primary: number; secondary: number; subordinate: number; secLatency: number } | null;
}

export interface DecodedExpress {
  version: number;
  /** Device/port type (Flags bits 7:4) and lspci's wording for it. */
  type: number;
  typeName: string;
  slot: boolean;
  /** Interrupt message number (lspci "MSI nn"). */
  msi: number;
}

export interface DecodedDevCap {
  maxPayload: number;
  phantFunc: number;
  extTag: boolean;
  rbe: boolean;
  /** FLReset (Function Level Reset supported). */
  flr: boolean;
}

export interface DecodedDevCtl {
  corrErr: boolean;
  nonFatalErr: boolean;
  fatalErr: boolean;
  unsupReq: boolean;
  rlxdOrd: boolean;
  extTag: boolean;
  phantFunc: boolean;
  auxPwr: boolean;
  noSnoop: boolean;
  maxPayload: number;
  maxReadReq: number;
}

export type AspmSupport = "not supported" | "L0s" | "L1" | "L0s L1";

export interface DecodedLnkCap {
  port: number;
  /** GT/s; null where lspci prints "unknown". */
  speedGTs: number | null;
  width: number;
  aspm: AspmSupport;
  clockPM: boolean;
  surprise: boolean;
  llActRep: boolean;
  bwNot: boolean;
}

export interface DecodedLnkCtl {
  aspm: "Disabled" | "L0s Enabled" | "L1 Enabled" | "L0s L1 Enabled";
  rcb: 64 | 128;
  disabled: boolean;
  commClk: boolean;
}

export interface DecodedLnkSta {
  speedGTs: number | null;
  width: number;
  trErr: boolean;
  train: boolean;
  slotClk: boolean;
  dlActive: boolean;
  bwMgmt: boolean;
  abwMgmt: boolean;
}

export interface DecodedDevCap2 {
  /** TPH completer: DEVCAP2 bits 13:12 (1 = TPH, 3 = TPH and extended TPH). */
  tphComp: boolean;
  extTphComp: boolean;
  ariFwd: boolean;
  tenBitTagComp: boolean;
  tenBitTagReq: boolean;
  ltr: boolean;
  atomicRouting: boolean;
  atomic32: boolean;
  atomic64: boolean;
  cas128: boolean;
}

export interface DecodedDevCtl2 {
  ariFwd: boolean;
  ltr: boolean;
  tenBitTagReq: boolean;
  atomicReqEn: boolean;
  atomicEgressBlck: boolean;
}

export interface DecodedLnkCap2 {
  /** Speeds set in the Supported Link Speeds vector, in GT/s. */
  supportedSpeedsGTs: number[];
  /** lspci's wording: "2.5-16GT/s", "2.5GT/s", "RsvdP", "Unknown". */
  supportedSpeeds: string;
  crosslink: boolean;
  retimer: boolean;
  twoRetimers: boolean;
  drs: boolean;
}

export interface DecodedLnkCtl2 {
  /** GT/s (a hard-wired 0 means 2.5 GT/s, as lspci prints). */
  targetSpeedGTs: number | null;
  enterCompliance: boolean;
  speedDis: boolean;
}

export interface DecodedLnkSta2 {
  equalizationComplete: boolean;
  /** Flit mode (PCIe 6.0, bit 10). lspci 3.9 does not print it. */
  flit: boolean;
}

export type AcsBits = Record<AcsBitName, boolean>;

export interface DecodedAcs {
  cap: AcsBits;
  ctl: AcsBits;
  /** Egress control vector size (bits), when EC is implemented. */
  egressVectorBits: number;
}

export type TphStLocation = "none" | "tph-cap" | "msix" | "reserved";

export interface DecodedTph {
  /** No-ST mode is mandatory for a TPH requester; the bit is reported as read. */
  noStMode: boolean;
  intVectorMode: boolean;
  deviceSpecificMode: boolean;
  extendedRequester: boolean;
  stLocation: TphStLocation;
  stTableSize: number;
  ctl: { stModeSelect: number; requesterEnable: number };
}

export interface DecodedSriov {
  cap: { migration: boolean; tenBitTagReq: boolean; interruptMessageNumber: number };
  ctl: {
    enable: boolean;
    migration: boolean;
    interrupt: boolean;
    mse: boolean;
    ariHierarchy: boolean;
    tenBitTagReq: boolean;
  };
  status: { migration: boolean };
  initialVfs: number;
  totalVfs: number;
  numVfs: number;
  functionDependencyLink: number;
  vfOffset: number;
  vfStride: number;
  vfDeviceId: number;
  supportedPageSize: number;
  systemPageSize: number;
}

export interface DecodedAri {
  cap: { mfvc: boolean; acs: boolean; nextFunction: number };
  ctl: { mfvc: boolean; acs: boolean; functionGroup: number };
}

export interface DecodedAts {
  invalidateQueueDepth: number;
  pageAligned: boolean;
  enable: boolean;
  smallestTranslationUnit: number;
}

export interface DecodedPri {
  enable: boolean;
  reset: boolean;
  rf: boolean;
  uprgi: boolean;
  stopped: boolean;
  capacity: number;
  allocation: number;
}

export interface DecodedPasid {
  cap: { exec: boolean; priv: boolean; maxWidth: number };
  ctl: { enable: boolean; exec: boolean; priv: boolean };
}

export interface DecodedConfig {
  /** Bytes the source had (64, 256, 4096 or anything between). */
  length: number;
  header: DecodedHeader;
  capabilities: CapabilityEntry[];
  /** Why the standard list stopped early, in lspci's words; null when it ended normally. */
  capabilityListEnd: "access denied" | "chain looped" | "chain broken" | null;
  extCapabilities: ExtCapabilityEntry[];
  express: DecodedExpress | null;
  devCap: DecodedDevCap | null;
  devCtl: DecodedDevCtl | null;
  lnkCap: DecodedLnkCap | null;
  lnkCtl: DecodedLnkCtl | null;
  lnkSta: DecodedLnkSta | null;
  devCap2: DecodedDevCap2 | null;
  devCtl2: DecodedDevCtl2 | null;
  /** null when the register reads 0 (it was reserved before PCIe 3.0; lspci then prints nothing). */
  lnkCap2: DecodedLnkCap2 | null;
  lnkCtl2: DecodedLnkCtl2 | null;
  lnkSta2: DecodedLnkSta2 | null;
  acs: DecodedAcs | null;
  tph: DecodedTph | null;
  sriov: DecodedSriov | null;
  ari: DecodedAri | null;
  ats: DecodedAts | null;
  pri: DecodedPri | null;
  pasid: DecodedPasid | null;
}

/** lspci's headings for standard capabilities (the part that does not depend on the registers). */
const STD_CAP_NAMES: Record<number, string> = {
  0: "Null",
  1: "Power Management",
  2: "AGP",
  3: "Vital Product Data",
  4: "Slot ID",
  5: "MSI",
  6: "CompactPCI hot-swap",
  7: "PCI-X",
  8: "HyperTransport",
  9: "Vendor Specific Information",
  10: "Debug port",
  11: "CompactPCI central resource control",
  12: "Hot-plug capable",
  13: "Subsystem",
  14: "AGP3",
  15: "Secure device",
  16: "Express",
  17: "MSI-X",
  18: "SATA HBA",
  19: "PCI Advanced Features",
  20: "Enhanced Allocation (EA)",
};

const EXT_CAP_NAMES: Record<number, string> = {
  1: "Advanced Error Reporting",
  2: "Virtual Channel",
  3: "Device Serial Number",
  4: "Power Budgeting",
  5: "Root Complex Link",
  6: "Root Complex Internal Link",
  7: "Root Complex Event Collector Endpoint Association",
  8: "Multi-Function Virtual Channel",
  9: "Virtual Channel",
  10: "Root Complex Register Block",
  11: "Vendor Specific Information",
  13: "Access Control Services",
  14: "Alternative Routing-ID Interpretation (ARI)",
  15: "Address Translation Service (ATS)",
  16: "Single Root I/O Virtualization (SR-IOV)",
  17: "Multi-Root I/O Virtualization",
  18: "Multicast",
  19: "Page Request Interface (PRI)",
  21: "Physical Resizable BAR",
  22: "Dynamic Power Allocation",
  23: "Transaction Processing Hints",
  24: "Latency Tolerance Reporting",
  25: "Secondary PCI Express",
  26: "Protocol Multiplexing",
  27: "Process Address Space ID (PASID)",
  28: "LN Requester",
  29: "Downstream Port Containment",
  30: "L1 PM Substates",
  31: "Precision Time Measurement",
  32: "PCI Express over M_PHY",
  33: "FRS Queueing",
  34: "Readiness Time Reporting",
  35: "Designated Vendor-Specific",
  36: "Virtual Resizable BAR",
  37: "Data Link Feature",
  38: "Physical Layer 16.0 GT/s",
  39: "Lane Margining at the Receiver",
  40: "Hierarchy ID",
  41: "Native PCIe Enclosure Management",
  46: "Data Object Exchange",
};

export function stdCapabilityName(id: number): string {
  return STD_CAP_NAMES[id] ?? `Capability ID ${hexId(id)}`;
}
export function extCapabilityName(id: number): string {
  return EXT_CAP_NAMES[id] ?? `Extended Capability ID ${hexId(id)}`;
}
const hexId = (id: number) => `0x${id.toString(16)}`;

/** lspci's names for the PCIe device/port types. */
export const EXPRESS_TYPE_NAMES: Record<number, string> = {
  0: "Endpoint",
  1: "Legacy Endpoint",
  4: "Root Port",
  5: "Upstream Port",
  6: "Downstream Port",
  7: "PCI-Express to PCI/PCI-X Bridge",
  8: "PCI/PCI-X to PCI-Express Bridge",
  9: "Root Complex Integrated Endpoint",
  10: "Root Complex Event Collector",
};

const T_ROOT_PORT = 0x4;
const T_DOWNSTREAM = 0x6;
const T_PCIE_BRIDGE = 0x8;
const T_RC_END = 0x9;
const T_RC_EC = 0xa;

const ASPM_SUPPORT: AspmSupport[] = ["not supported", "L0s", "L1", "L0s L1"];
const ASPM_CTL: DecodedLnkCtl["aspm"][] = ["Disabled", "L0s Enabled", "L1 Enabled", "L0s L1 Enabled"];

/** Reads limited to the bytes the source had; anything else is "not fetchable". */
class Reader {
  private readonly view: DataView;
  constructor(
    bytes: Uint8Array,
    readonly length: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  has(off: number, len: number): boolean {
    return off >= 0 && off + len <= this.length;
  }
  u8(off: number): number {
    return this.has(off, 1) ? this.view.getUint8(off) : 0xff;
  }
  u16(off: number): number {
    return this.has(off, 2) ? this.view.getUint16(off, true) : 0xffff;
  }
  u32(off: number): number {
    return this.has(off, 4) ? this.view.getUint32(off, true) : 0xffffffff;
  }
}

const bit = (v: number, b: number) => ((v >>> b) & 1) === 1;

/**
 * Decodes `cfg`. `length` is how many bytes the source really had (default: all of them);
 * bytes past it are treated as unreadable even when the buffer was padded.
 */
export function decodeConfig(cfg: ConfigBytes | Uint8Array, length?: number): DecodedConfig {
  const bytes = cfg instanceof Uint8Array ? cfg : cfg.bytes;
  const len = Math.max(0, Math.min(length ?? bytes.length, bytes.length, 4096));
  const r = new Reader(bytes, len);
  const header = decodeHeader(r);
  const out: DecodedConfig = {
    length: len,
    header,
    capabilities: [],
    capabilityListEnd: null,
    extCapabilities: [],
    express: null,
    devCap: null,
    devCtl: null,
    lnkCap: null,
    lnkCtl: null,
    lnkSta: null,
    devCap2: null,
    devCtl2: null,
    lnkCap2: null,
    lnkCtl2: null,
    lnkSta2: null,
    acs: null,
    tph: null,
    sriov: null,
    ari: null,
    ats: null,
    pri: null,
    pasid: null,
  };
  let canHaveExtCaps = false;
  if (header.status.cap) {
    // CardBus bridges keep the list pointer at 0x14.
    const seen = new Set<number>();
    let where = r.u8(header.headerType === 2 ? 0x14 : 0x34) & ~3;
    while (where) {
      if (!r.has(where, 4)) {
        out.capabilityListEnd = "access denied";
        break;
      }
      if (seen.has(where)) {
        out.capabilityListEnd = "chain looped";
        break;
      }
      seen.add(where);
      const id = r.u8(where);
      if (id === 0xff) {
        out.capabilityListEnd = "chain broken";
        break;
      }
      out.capabilities.push({ id, offset: where, name: stdCapabilityName(id) });
      if (id === 0x10) {
        decodeExpress(r, where, out);
        canHaveExtCaps = true;
      } else if (id === 0x07) canHaveExtCaps = true;
      where = r.u8(where + 1) & ~3;
    }
  }
  if (canHaveExtCaps) decodeExtCaps(r, out);
  return out;
}

function decodeHeader(r: Reader): DecodedHeader {
  const headerType = r.u8(0x0e) & 0x7f;
  const command = r.u16(0x04);
  const status = r.u16(0x06);
  return {
    vendor: r.u16(0x00),
    device: r.u16(0x02),
    revision: r.u8(0x08),
    classCode: (r.u16(0x0a) << 8) | r.u8(0x09),
    progIf: r.u8(0x09),
    headerType,
    multifunction: (r.u8(0x0e) & 0x80) !== 0,
    command: {
      io: bit(command, 0),
      mem: bit(command, 1),
      busMaster: bit(command, 2),
      disIntx: bit(command, 10),
    },
    status: { cap: bit(status, 4) },
    subsystem: headerType === 0 ? { vendor: r.u16(0x2c), device: r.u16(0x2e) } : null,
    bus:
      headerType === 1 || headerType === 2
        ? { primary: r.u8(0x18), secondary: r.u8(0x19), subordinate: r.u8(0x1a), secLatency: r.u8(0x1b) }
        : null,
  };
}

function speedOf(code: number): number | null {
  // pciutils 3.9 names codes 1..6 (2.5 to 64 GT/s) and prints "unknown" otherwise.
  return code >= 1 && code <= 6 ? LINK_SPEED_GTS[code] : null;
}

function decodeExpress(r: Reader, where: number, out: DecodedConfig): void {
  const flags = r.u16(where + 2);
  const type = (flags >> 4) & 0xf;
  const version = flags & 0xf;
  const slotCapable = type === T_ROOT_PORT || type === T_DOWNSTREAM || type === T_PCIE_BRIDGE;
  const slot = slotCapable && bit(flags, 8);
  out.express = {
    version,
    type,
    typeName: EXPRESS_TYPE_NAMES[type] ?? `Unknown type ${type}`,
    slot,
    msi: (flags >> 9) & 0x1f,
  };
  const hasLink = type !== T_RC_END && type !== T_RC_EC;
  // lspci needs DevCap..(LnkSta|SltSta|RootSta) readable before it prints any of them.
  let size = slot ? 24 : 16;
  if (type === T_ROOT_PORT || type === T_RC_EC) size = 32;
  if (!r.has(where + 4, size)) return;

  const devcap = r.u32(where + 4);
  out.devCap = {
    maxPayload: 128 << (devcap & 7),
    phantFunc: (1 << ((devcap >> 3) & 3)) - 1,
    extTag: bit(devcap, 5),
    rbe: bit(devcap, 15),
    flr: bit(devcap, 28),
  };
  const devctl = r.u16(where + 8);
  out.devCtl = {
    corrErr: bit(devctl, 0),
    nonFatalErr: bit(devctl, 1),
    fatalErr: bit(devctl, 2),
    unsupReq: bit(devctl, 3),
    rlxdOrd: bit(devctl, 4),
    extTag: bit(devctl, 8),
    phantFunc: bit(devctl, 9),
    auxPwr: bit(devctl, 10),
    noSnoop: bit(devctl, 11),
    maxPayload: 128 << ((devctl >> 5) & 7),
    maxReadReq: 128 << ((devctl >> 12) & 7),
  };
  let lnkcap2 = 0;
  if (hasLink) {
    const lnkcap = r.u32(where + 0x0c);
    out.lnkCap = {
      port: lnkcap >>> 24,
      speedGTs: speedOf(lnkcap & 0xf),
      width: (lnkcap >> 4) & 0x3f,
      aspm: ASPM_SUPPORT[(lnkcap >> 10) & 3],
      clockPM: bit(lnkcap, 18),
      surprise: bit(lnkcap, 19),
      llActRep: bit(lnkcap, 20),
      bwNot: bit(lnkcap, 21),
    };
    const lnkctl = r.u16(where + 0x10);
    out.lnkCtl = {
      aspm: ASPM_CTL[lnkctl & 3],
      rcb: bit(lnkctl, 3) ? 128 : 64,
      disabled: bit(lnkctl, 4),
      commClk: bit(lnkctl, 6),
    };
    const lnksta = r.u16(where + 0x12);
    out.lnkSta = {
      speedGTs: speedOf(lnksta & 0xf),
      width: (lnksta >> 4) & 0x3f,
      trErr: bit(lnksta, 10),
      train: bit(lnksta, 11),
      slotClk: bit(lnksta, 12),
      dlActive: bit(lnksta, 13),
      bwMgmt: bit(lnksta, 14),
      abwMgmt: bit(lnksta, 15),
    };
  }
  if (version < 2) return;
  if (!r.has(where + 0x24, slot ? 24 : 16)) return;
  const devcap2 = r.u32(where + 0x24);
  out.devCap2 = {
    tphComp: bit(devcap2, 12),
    extTphComp: bit(devcap2, 13),
    ariFwd: bit(devcap2, 5),
    tenBitTagComp: bit(devcap2, 16),
    tenBitTagReq: bit(devcap2, 17),
    ltr: bit(devcap2, 11),
    atomicRouting: bit(devcap2, 6),
    atomic32: bit(devcap2, 7),
    atomic64: bit(devcap2, 8),
    cas128: bit(devcap2, 9),
  };
  const devctl2 = r.u16(where + 0x28);
  out.devCtl2 = {
    ariFwd: bit(devctl2, 5),
    atomicReqEn: bit(devctl2, 6),
    atomicEgressBlck: bit(devctl2, 7),
    ltr: bit(devctl2, 10),
    tenBitTagReq: bit(devctl2, 12),
  };
  if (hasLink) {
    lnkcap2 = r.u32(where + 0x2c);
    if (lnkcap2) {
      const vector = (lnkcap2 >> 1) & 0x7f;
      const speeds: number[] = [];
      for (let b = 0; b < 7; b++) if (vector & (1 << b)) speeds.push(LINK_SPEED_GTS[b + 1]);
      out.lnkCap2 = {
        supportedSpeedsGTs: speeds,
        supportedSpeeds: supportedSpeedsWording(vector),
        crosslink: bit(lnkcap2, 8),
        retimer: bit(lnkcap2, 23),
        twoRetimers: bit(lnkcap2, 24),
        drs: bit(lnkcap2, 31),
      };
    }
    const lnkctl2 = r.u16(where + 0x30);
    const target = lnkctl2 & 0xf;
    out.lnkCtl2 = {
      targetSpeedGTs: target === 0 ? 2.5 : speedOf(target),
      enterCompliance: bit(lnkctl2, 4),
      speedDis: bit(lnkctl2, 5),
    };
    const lnksta2 = r.u16(where + 0x32);
    out.lnkSta2 = { equalizationComplete: bit(lnksta2, 1), flit: bit(lnksta2, 10) };
  }
}

/** lspci's summary of the Supported Link Speeds vector (PCIe: no gaps above 2.5 GT/s). */
function supportedSpeedsWording(vector: number): string {
  if (vector & 0x60) return "RsvdP";
  if (vector & 0x10) return "2.5-32GT/s";
  if (vector & 0x08) return "2.5-16GT/s";
  if (vector & 0x04) return "2.5-8GT/s";
  if (vector & 0x02) return "2.5-5GT/s";
  if (vector & 0x01) return "2.5GT/s";
  return "Unknown";
}

function acsBits(v: number): AcsBits {
  const o = {} as AcsBits;
  ACS_BIT_NAMES.forEach((n, i) => {
    o[n] = bit(v, i);
  });
  return o;
}

function decodeExtCaps(r: Reader, out: DecodedConfig): void {
  const seen = new Set<number>();
  let where = 0x100;
  do {
    if (!r.has(where, 4)) break;
    const hdr = r.u32(where);
    if (hdr === 0 || hdr === 0xffffffff) break;
    const id = hdr & 0xffff;
    const version = (hdr >>> 16) & 0xf;
    if (seen.has(where)) break; // lspci: "<chain looped>"
    seen.add(where);
    out.extCapabilities.push({ id, offset: where, version, name: extCapabilityName(id) });
    decodeExtCap(r, id, where, out);
    where = (hdr >>> 20) & ~3;
  } while (where);
}

function decodeExtCap(r: Reader, id: number, where: number, out: DecodedConfig): void {
  switch (id) {
    case 0x0d: {
      if (!r.has(where + 4, 4)) return;
      const cap = r.u16(where + 4);
      const ctl = r.u16(where + 6);
      out.acs ??= {
        cap: acsBits(cap),
        ctl: acsBits(ctl),
        egressVectorBits: bit(cap, 5) ? (cap >> 8) & 0xff || 256 : 0,
      };
      return;
    }
    case 0x17: {
      if (!r.has(where + 4, 4)) return;
      const cap = r.u32(where + 4);
      const ctl = r.has(where + 8, 4) ? r.u32(where + 8) : 0;
      const loc = (cap >> 9) & 3;
      out.tph ??= {
        noStMode: bit(cap, 0),
        intVectorMode: bit(cap, 1),
        deviceSpecificMode: bit(cap, 2),
        extendedRequester: bit(cap, 8),
        stLocation: (["none", "tph-cap", "msix", "reserved"] as const)[loc],
        stTableSize: ((cap >>> 16) & 0x7ff) + 1,
        ctl: { stModeSelect: ctl & 7, requesterEnable: (ctl >> 8) & 3 },
      };
      return;
    }
    case 0x10: {
      if (!r.has(where + 4, 0x3c)) return;
      const cap = r.u32(where + 4);
      const ctl = r.u16(where + 8);
      out.sriov ??= {
        cap: { migration: bit(cap, 0), tenBitTagReq: bit(cap, 2), interruptMessageNumber: cap >>> 21 },
        ctl: {
          enable: bit(ctl, 0),
          migration: bit(ctl, 1),
          interrupt: bit(ctl, 2),
          mse: bit(ctl, 3),
          ariHierarchy: bit(ctl, 4),
          tenBitTagReq: bit(ctl, 5),
        },
        status: { migration: bit(r.u16(where + 0x0a), 0) },
        initialVfs: r.u16(where + 0x0c),
        totalVfs: r.u16(where + 0x0e),
        numVfs: r.u16(where + 0x10),
        functionDependencyLink: r.u8(where + 0x12),
        vfOffset: r.u16(where + 0x14),
        vfStride: r.u16(where + 0x16),
        vfDeviceId: r.u16(where + 0x1a),
        supportedPageSize: r.u32(where + 0x1c),
        systemPageSize: r.u32(where + 0x20),
      };
      return;
    }
    case 0x0e: {
      if (!r.has(where + 4, 4)) return;
      const cap = r.u16(where + 4);
      const ctl = r.u16(where + 6);
      out.ari ??= {
        cap: { mfvc: bit(cap, 0), acs: bit(cap, 1), nextFunction: cap >> 8 },
        ctl: { mfvc: bit(ctl, 0), acs: bit(ctl, 1), functionGroup: (ctl >> 4) & 7 },
      };
      return;
    }
    case 0x0f: {
      if (!r.has(where + 4, 4)) return;
      const cap = r.u16(where + 4);
      const ctl = r.u16(where + 6);
      out.ats ??= {
        invalidateQueueDepth: cap & 0x1f,
        pageAligned: bit(cap, 5),
        enable: bit(ctl, 15),
        smallestTranslationUnit: ctl & 0x1f,
      };
      return;
    }
    case 0x13: {
      if (!r.has(where + 4, 0x0c)) return;
      const ctl = r.u16(where + 4);
      const sta = r.u16(where + 6);
      out.pri ??= {
        enable: bit(ctl, 0),
        reset: bit(ctl, 1),
        rf: bit(sta, 0),
        uprgi: bit(sta, 1),
        stopped: bit(sta, 8),
        capacity: r.u32(where + 8),
        allocation: r.u32(where + 0x0c),
      };
      return;
    }
    case 0x1b: {
      if (!r.has(where + 4, 4)) return;
      const cap = r.u16(where + 4);
      const ctl = r.u16(where + 6);
      out.pasid ??= {
        cap: { exec: bit(cap, 1), priv: bit(cap, 2), maxWidth: (cap >> 8) & 0x1f },
        ctl: { enable: bit(ctl, 0), exec: bit(ctl, 1), priv: bit(ctl, 2) },
      };
      return;
    }
  }
}
