import { InputError } from "../core/errors.js";
import { fnOf, formatBdf, type PciAddress, slotOf } from "./bdf.js";
import type { ConfigSpace } from "./config-space.js";
import {
  LINK_SPEED_GTS,
  PCI_ACS_CAP,
  PCI_ACS_CTRL,
  PCI_AF_CAP,
  PCI_AF_CAP_FLR,
  PCI_AF_CAP_TP,
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_CAP_ID_AF,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_PM,
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCAP2,
  PCI_EXP_DEVCAP2_TPH_COMP_MASK,
  PCI_EXP_DEVCTL,
  PCI_EXP_FLAGS,
  PCI_EXP_LNKCAP,
  PCI_EXP_LNKCTL,
  PCI_EXP_LNKCTL_RCB,
  PCI_EXP_LNKSTA,
  PCI_EXP_LNKSTA2,
  PCI_EXP_TYPE,
  PCI_EXT_CAP_ID_ACS,
  PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_MFD,
  PCI_PM_CTRL,
  PCI_PM_CTRL_NO_SOFT_RESET,
  PCI_PM_CTRL_STATE_MASK,
} from "./regs.js";

/** MPS/MRRS encoding: 0→128 … 5→4096; 6 and 7 are reserved. */
function payloadSize(code: number, field: string, bdf: string): number {
  if (code > 5)
    throw new InputError(`${field} holds the reserved code ${code} (valid 0..5 = 128..4096 bytes)`, bdf);
  return 128 << code;
}

/** Resource flags (the kernel's IORESOURCE_* values). */
export const IORESOURCE_IO = 0x100;
export const IORESOURCE_MEM = 0x200;
export const IORESOURCE_PREFETCH = 0x2000;
export const IORESOURCE_MEM_64 = 0x100000;

/** A BAR as the kernel's resource: CPU physical start and length; flags 0 when unimplemented. */
export interface Resource {
  index: number;
  flags: number;
  start: bigint;
  len: bigint;
}

export type FunctionKind =
  | "host-bridge"
  | "root-port"
  | "upstream-port"
  | "downstream-port"
  | "pci-bridge"
  | "endpoint"
  | "rciep";

export interface LinkState {
  speed: number; // GT/s, negotiated
  width: number;
  maxSpeed: number;
  maxWidth: number;
  flit: boolean;
}

export interface HostBridgeWindow {
  /** CPU physical base and size; bus address = CPU address − busOffset. */
  cpuBase: bigint;
  size: bigint;
  busOffset: bigint;
}

/** Performance parameters of a host bridge or switch (pcie-bandwidth.md §5.4). */
export interface ForwardingParams {
  p2pSplitBytes?: number;
  p2pForwardGBps?: number;
}

export class HostBridge {
  readonly rootBus: PciBus;
  constructor(
    readonly domain: number,
    readonly busNumber: number,
    readonly windows: HostBridgeWindow[] = [],
    readonly numaNode = -1,
    readonly name = "",
    readonly forwarding: ForwardingParams = {},
  ) {
    this.rootBus = new PciBus(busNumber, null, this, null);
  }

  get label(): string {
    return `pci${this.domain.toString(16).padStart(4, "0")}:${this.busNumber.toString(16).padStart(2, "0")}`;
  }

  /**
   * The device the P2PDMA allow-list looks at: the first function on the root bus, if it is
   * devfn 00.0 or a PCIe root port; otherwise none (kernel-semantics §1.1).
   */
  get identityDevice(): PciDev | null {
    const first = this.rootBus.devices[0];
    if (!first) return null;
    if (first.devfn === 0 || first.pcieType === PCI_EXP_TYPE.ROOT_PORT) return first;
    return null;
  }

  /** Offset of the window containing `cpuAddr` (0 when none matches, as on most x86). */
  busOffsetOf(cpuAddr: bigint): bigint {
    for (const w of this.windows)
      if (cpuAddr >= w.cpuBase && cpuAddr < w.cpuBase + w.size) return w.busOffset;
    return 0n;
  }
}

export class PciBus {
  readonly devices: PciDev[] = [];
  readonly children: PciBus[] = [];
  constructor(
    readonly number: number,
    /** The bridge whose secondary side this bus is (`bus->self`); null on a root bus. */
    readonly self: PciDev | null,
    readonly hostBridge: HostBridge,
    readonly parent: PciBus | null,
  ) {}

  get isRoot(): boolean {
    return this.parent === null;
  }
  get segment(): number {
    return this.hostBridge.domain;
  }
}

/** One PCI function. Identity, type and capability state are read from its config space. */
export class PciDev {
  /** Secondary bus for bridges. */
  subordinate: PciBus | null = null;
  resources: Resource[] = Array.from({ length: 6 }, (_, index) => ({ index, flags: 0, start: 0n, len: 0n }));
  isVirtfn = false;
  physfn: PciDev | null = null;
  readonly virtfns: PciDev[] = [];
  /** Names of BARs given by the machine file ("CMB", "doorbells"). */
  barNames: (string | undefined)[] = [];
  driver: string | null = null;
  /** Explicit DMA alias devfns on the same bus (quirks such as phantom functions). */
  dmaAliases: number[] = [];
  /** ACS quirk: answers `pci_acs_enabled` directly when set (kernel-semantics §11.2 step 1). */
  acsQuirk: boolean | undefined = undefined;
  /** BARs that cannot be mapped by peers (s390's `non_mappable_bars`, §12.1 variant). */
  nonMappableBars = false;
  /** Behind an IOMMU with a DMA-API domain (false = dma-direct). */
  behindIommu = true;
  dmaMask: bigint = (1n << 64n) - 1n;
  name = "";
  numaNode = -1;
  /**
   * The link as another source reported it (sysfs `*_link_speed`/`*_link_width`), used only when
   * the config space at hand has no PCIe capability to read (a 64-byte snapshot).
   */
  reportedLink: LinkState | null = null;
  /** Engine and link parameters for the bandwidth model. */
  perf: { dmaEngineGBps?: number; maxOutstandingReads?: number } = {};
  /**
   * Vital Product Data as the VPD capability returns it (src/pci/vpd.ts); null = no VPD capability.
   * Device data from the machine file or a test (the config space does not carry the capability).
   */
  vpd: Uint8Array | null = null;
  /**
   * What a conventional or function-level reset does inside the function beyond config space (a
   * device model's registers and queues), run by every reset while decode is off. Models add to it.
   */
  readonly resetHooks: (() => void)[] = [];

  constructor(
    readonly bus: PciBus,
    readonly devfn: number,
    readonly config: ConfigSpace,
  ) {}

  get segment(): number {
    return this.bus.hostBridge.domain;
  }
  get busNumber(): number {
    return this.bus.number;
  }
  get address(): PciAddress {
    return { segment: this.segment, bus: this.bus.number, devfn: this.devfn };
  }
  get hostBridge(): HostBridge {
    return this.bus.hostBridge;
  }
  private bdfCache: string | undefined;
  get bdf(): string {
    this.bdfCache ??= formatBdf({ segment: this.segment, bus: this.bus.number, devfn: this.devfn });
    return this.bdfCache;
  }
  /** Key of this device as a P2PDMA client in a provider's map-type cache (K-8). */
  get cacheKey(): number {
    return this.segment * 0x10000 + ((this.bus.number & 0xff) << 8) + (this.devfn & 0xff);
  }
  get slot(): number {
    return slotOf(this.devfn);
  }
  get fn(): number {
    return fnOf(this.devfn);
  }

  get vendor(): number {
    return this.config.read16(0x00);
  }
  get device(): number {
    return this.config.read16(0x02);
  }
  get classCode(): number {
    return (this.config.read16(0x0a) << 8) | this.config.read8(0x09);
  }
  get revision(): number {
    return this.config.read8(0x08);
  }
  get headerType(): number {
    return this.config.read8(PCI_HEADER_TYPE);
  }
  get isBridgeHeader(): boolean {
    return (this.headerType & 0x7f) === 1;
  }

  /**
   * Linux's `dev->multifunction`: header bit 7, or any function number above 0 (pci_scan_slot
   * marks every function it finds after function 0; QEMU leaves bit 7 clear there). K-199.
   */
  get multifunction(): boolean {
    // VFs are not found by pci_scan_slot, so only their own header bit counts.
    return (this.headerType & PCI_HEADER_TYPE_MFD) !== 0 || (this.fn > 0 && !this.isVirtfn);
  }

  get pcieCapOffset(): number {
    return this.config.findCapability(PCI_CAP_ID_EXP);
  }
  get isPcie(): boolean {
    return this.pcieCapOffset !== 0;
  }
  /** PCIe device/port type, or null for conventional PCI. */
  get pcieType(): number | null {
    const o = this.pcieCapOffset;
    return o ? (this.config.read16(o + PCI_EXP_FLAGS) >> 4) & 0xf : null;
  }

  get kind(): FunctionKind {
    const t = this.pcieType;
    if (this.isBridgeHeader) {
      if (t === PCI_EXP_TYPE.ROOT_PORT) return "root-port";
      if (t === PCI_EXP_TYPE.UPSTREAM) return "upstream-port";
      if (t === PCI_EXP_TYPE.DOWNSTREAM) return "downstream-port";
      return "pci-bridge";
    }
    if (this.classCode >> 8 === 0x0600) return "host-bridge";
    if (t === PCI_EXP_TYPE.RC_END) return "rciep";
    return "endpoint";
  }

  /* ACS */
  /** Capability layout never changes after the config space is built; remember where ACS is. */
  private acsOffsetCache = -1;
  get acsCapOffset(): number {
    if (this.acsOffsetCache < 0) this.acsOffsetCache = this.config.findExtCapability(PCI_EXT_CAP_ID_ACS);
    return this.acsOffsetCache;
  }
  get acsCapReg(): number {
    const o = this.acsCapOffset;
    return o ? this.config.read16(o + PCI_ACS_CAP) & 0x7f : 0;
  }
  get acsCtrlReg(): number {
    const o = this.acsCapOffset;
    return o ? this.config.read16(o + PCI_ACS_CTRL) & 0x7f : 0;
  }
  /** Sets ACS control (what `setpci` or `config_acs=` would do). No-op without the capability. */
  setAcsCtrl(bits: number): void {
    const o = this.acsCapOffset;
    if (o) this.config.write16(o + PCI_ACS_CTRL, bits & 0x7f);
  }

  /* COMMAND */
  get command(): number {
    return this.config.read16(PCI_COMMAND);
  }
  set command(v: number) {
    this.config.write16(PCI_COMMAND, v);
  }
  get memoryDecodeEnabled(): boolean {
    return (this.command & PCI_COMMAND_MEMORY) !== 0;
  }

  /* PCIe device and link */
  get flrCapable(): boolean {
    const o = this.pcieCapOffset;
    if (o && this.config.read32(o + PCI_EXP_DEVCAP) & PCI_EXP_DEVCAP_FLR) return true;
    return false;
  }
  /** Conventional-PCI FLR through the Advanced Features capability (needs TP and FLR). */
  get afFlrCapable(): boolean {
    const o = this.config.findCapability(PCI_CAP_ID_AF);
    if (!o) return false;
    const cap = this.config.read8(o + PCI_AF_CAP);
    return (cap & PCI_AF_CAP_TP) !== 0 && (cap & PCI_AF_CAP_FLR) !== 0;
  }
  get pmCapOffset(): number {
    return this.config.findCapability(PCI_CAP_ID_PM);
  }
  get noSoftReset(): boolean {
    const o = this.pmCapOffset;
    return o ? (this.config.read16(o + PCI_PM_CTRL) & PCI_PM_CTRL_NO_SOFT_RESET) !== 0 : false;
  }
  /** D0=0 … D3hot=3 from PMCSR; D0 without a PM capability. */
  get powerState(): number {
    const o = this.pmCapOffset;
    return o ? this.config.read16(o + PCI_PM_CTRL) & PCI_PM_CTRL_STATE_MASK : 0;
  }
  set powerState(state: number) {
    const o = this.pmCapOffset;
    if (o) this.config.write16(o + PCI_PM_CTRL, (this.config.read16(o + PCI_PM_CTRL) & ~3) | (state & 3));
  }
  /** Max payload size (bytes) programmed in DevCtl; 128 when not PCIe. Reserved codes are bad input (BW-14). */
  get mps(): number {
    const o = this.pcieCapOffset;
    return o
      ? payloadSize((this.config.read16(o + PCI_EXP_DEVCTL) >> 5) & 7, "DevCtl.MaxPayload", this.bdf)
      : 128;
  }
  get mrrs(): number {
    const o = this.pcieCapOffset;
    return o
      ? payloadSize((this.config.read16(o + PCI_EXP_DEVCTL) >> 12) & 7, "DevCtl.MaxReadReq", this.bdf)
      : 128;
  }
  get rcb(): number {
    const o = this.pcieCapOffset;
    return o && this.config.read16(o + PCI_EXP_LNKCTL) & PCI_EXP_LNKCTL_RCB ? 128 : 64;
  }
  /** DEVCAP2 bits 13:12 (kernel-semantics §1.2): 0 none, 1 TPH only, 3 TPH and extended TPH. */
  get tphCompleter(): number {
    const o = this.pcieCapOffset;
    return o ? (this.config.read32(o + PCI_EXP_DEVCAP2) & PCI_EXP_DEVCAP2_TPH_COMP_MASK) >> 12 : 0;
  }
  /** Link as the PCIe capability reports it; null for functions without a link (RCiEPs, conventional). */
  get link(): LinkState | null {
    const o = this.pcieCapOffset;
    const t = this.pcieType;
    if (!o) return this.reportedLink;
    if (t === PCI_EXP_TYPE.RC_END || t === PCI_EXP_TYPE.RC_EC) return null;
    const cap = this.config.read32(o + PCI_EXP_LNKCAP);
    const sta = this.config.read16(o + PCI_EXP_LNKSTA);
    const maxSpeed = LINK_SPEED_GTS[cap & 0xf] ?? 0;
    const maxWidth = (cap >> 4) & 0x3f;
    // A zero LnkCap with a live LnkSta still is a link (QEMU's xio3130-downstream reports LnkCap 0).
    if (!maxSpeed && !maxWidth && !(sta & 0x3ff)) return null;
    return {
      speed: LINK_SPEED_GTS[sta & 0xf] ?? 0,
      width: (sta >> 4) & 0x3f,
      maxSpeed,
      maxWidth,
      flit: (this.config.read16(o + PCI_EXP_LNKSTA2) & (1 << 10)) !== 0,
    };
  }

  /** The BAR register index → resource, 64-bit upper halves have flags 0 (kernel-semantics §1.1). */
  resource(bar: number): Resource {
    return this.resources[bar];
  }

  /** `pci_bus_address(dev, bar)`: CPU start minus the host-bridge window offset. */
  busAddress(bar: number): bigint {
    const r = this.resources[bar];
    return r.start - this.hostBridge.busOffsetOf(r.start);
  }

  /**
   * A config write as the device sees it. BAR registers implement the sizing protocol: the
   * address bits below the BAR's size read back as zero and the type bits are read-only.
   */
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    const barIdx = (offset - PCI_BASE_ADDRESS_0) >> 2;
    if (!this.isBridgeHeader && size === 4 && offset >= 0x10 && offset <= 0x24 && (offset & 3) === 0) {
      this.writeBar(barIdx, value >>> 0);
      return;
    }
    if (size === 1) this.config.write8(offset, value);
    else if (size === 2) this.config.write16(offset, value);
    else this.config.write32(offset, value);
  }

  configRead(offset: number, size: 1 | 2 | 4): number {
    return size === 1
      ? this.config.read8(offset)
      : size === 2
        ? this.config.read16(offset)
        : this.config.read32(offset);
  }

  private writeBar(i: number, v: number): void {
    const off = PCI_BASE_ADDRESS_0 + 4 * i;
    const r = this.resources[i];
    const lower = i > 0 ? this.resources[i - 1] : undefined;
    if (r.flags === 0 && lower && lower.flags & IORESOURCE_MEM_64) {
      // upper half of a 64-bit BAR: the bits above the size are writable
      const mask = Number((~(lower.len - 1n) >> 32n) & 0xffffffffn);
      this.config.write32(off, v & mask);
      return;
    }
    if (r.flags === 0) {
      this.config.write32(off, 0);
      return;
    }
    const typeBits = this.config.read32(off) & (r.flags & IORESOURCE_IO ? 0x3 : 0xf);
    const mask = Number(~(r.len - 1n) & 0xffffffffn) & (r.flags & IORESOURCE_IO ? ~0x3 : ~0xf);
    this.config.write32(off, ((v & mask) | typeBits) >>> 0);
  }

  /** Writes the resource's bus address into its BAR register(s). */
  programBar(i: number): void {
    const r = this.resources[i];
    if (!r.flags) return;
    const bus = this.busAddress(i);
    const off = PCI_BASE_ADDRESS_0 + 4 * i;
    if (r.flags & IORESOURCE_IO) {
      this.config.write32(off, (Number(bus & 0xfffffffcn) | PCI_BASE_ADDRESS_SPACE_IO) >>> 0);
      return;
    }
    let low = Number(bus & 0xfffffff0n);
    if (r.flags & IORESOURCE_MEM_64) low |= PCI_BASE_ADDRESS_MEM_TYPE_64;
    if (r.flags & IORESOURCE_PREFETCH) low |= PCI_BASE_ADDRESS_MEM_PREFETCH;
    this.config.write32(off, low >>> 0);
    if (r.flags & IORESOURCE_MEM_64) this.config.write32(off + 4, Number((bus >> 32n) & 0xffffffffn));
  }
}
