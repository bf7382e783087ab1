/**
 * TLP Processing Hints, requester side (tph-and-tlp.md §2–§4): the TPH Requester capability
 * read from config space, Steering-Tag tables in the capability or in the MSI-X table, the
 * completer field of DevCap2, the `lspci -vv` text for both, and Linux's TPH core
 * (`drivers/pci/tph.c` plus the two helpers the dma-buf TPH series adds).
 *
 * The kernel keeps `tph_enabled` / `tph_mode` / `tph_req_type` on each `pci_dev`; here they live
 * in a {@link TphCore} built per machine, together with the MSI core state TPH needs (MSI-X
 * enabled, vectors allocated) and the MSI-X tables, which are device memory behind a BAR.
 */
import { InputError, KernelBug, KernelError } from "../core/errors.js";
import { ConfigSpace } from "./config-space.js";
import { IORESOURCE_MEM, type PciDev } from "./device.js";
import { Fabric } from "./fabric.js";
import {
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSIX,
  PCI_EXP_DEVCAP2,
  PCI_EXP_DEVCAP2_TPH_COMP_MASK,
  PCI_EXP_FLAGS,
  PCI_EXP_TYPE,
  PCI_EXT_CAP_ID_TPH,
  PCI_TPH_BASE_SIZEOF,
  PCI_TPH_CAP,
  PCI_TPH_CTRL,
} from "./regs.js";

/* pci_regs.h, TPH requester (§2.1). PCI_TPH_CAP / PCI_TPH_CTRL / PCI_TPH_BASE_SIZEOF are in regs.ts. */
export const PCI_TPH_CAP_ST_NS = 0x1;
export const PCI_TPH_CAP_ST_IV = 0x2;
export const PCI_TPH_CAP_ST_DS = 0x4;
export const PCI_TPH_CAP_EXT_TPH = 0x100;
export const PCI_TPH_CAP_LOC_MASK = 0x600;
export const PCI_TPH_LOC_NONE = 0x000;
export const PCI_TPH_LOC_CAP = 0x200;
export const PCI_TPH_LOC_MSIX = 0x400;
export const PCI_TPH_CAP_ST_MASK = 0x07ff0000;
export const PCI_TPH_CAP_ST_SHIFT = 16;
export const PCI_TPH_CTRL_MODE_SEL_MASK = 0x7;
export const PCI_TPH_ST_NS_MODE = 0;
export const PCI_TPH_ST_IV_MODE = 1;
export const PCI_TPH_ST_DS_MODE = 2;
export const PCI_TPH_CTRL_REQ_EN_MASK = 0x300;
export const PCI_TPH_REQ_DISABLE = 0;
export const PCI_TPH_REQ_TPH_ONLY = 1;
export const PCI_TPH_REQ_EXT_TPH = 3;

/* MSI-X capability and table entry (§2.2). */
export const PCI_MSIX_FLAGS = 2;
export const PCI_MSIX_FLAGS_QSIZE = 0x07ff;
export const PCI_MSIX_FLAGS_MASKALL = 0x4000;
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
export const PCI_MSIX_TABLE = 4;
export const PCI_MSIX_TABLE_BIR = 0x7;
export const PCI_MSIX_TABLE_OFFSET = 0xfffffff8;
export const PCI_MSIX_ENTRY_SIZE = 16;
export const PCI_MSIX_ENTRY_VECTOR_CTRL = 0xc;
export const PCI_MSIX_ENTRY_CTRL_MASKBIT = 0x1;
export const PCI_MSIX_ENTRY_CTRL_ST_LOWER = 0x00ff0000;
export const PCI_MSIX_ENTRY_CTRL_ST_UPPER = 0xff000000;
export const PCI_MSIX_ENTRY_CTRL_ST = 0xffff0000;

/** `enum tph_mem_type` (include/linux/pci-tph.h). */
export const TPH_MEM_TYPE_VM = 0;
export const TPH_MEM_TYPE_PM = 1;
export type TphMemType = typeof TPH_MEM_TYPE_VM | typeof TPH_MEM_TYPE_PM;

export type TphTableLocation = "none" | "cap" | "msix" | "reserved";
const LOCATION_NAMES: readonly TphTableLocation[] = ["none", "cap", "msix", "reserved"];

export interface TphControl {
  /** Bits 2:0: 0 No ST, 1 Interrupt Vector, 2 Device Specific. */
  stModeSelect: number;
  /** Bits 9:8: 0 disabled, 1 TPH only, 3 TPH and Extended TPH (2 reserved). */
  requesterEnable: number;
}

/** The TPH Requester capability as read from config space (§2.1). */
export interface TphCapability {
  offset: number;
  version: number;
  capReg: number;
  ctrlReg: number;
  noStMode: boolean;
  intVectorMode: boolean;
  deviceSpecificMode: boolean;
  extendedRequester: boolean;
  /** The location field value 0..3 (what `pcie_tph_get_st_table_loc` returns). */
  stTableLoc: number;
  stTableLocation: TphTableLocation;
  /** Raw ST Table Size field (N−1). */
  stTableSizeField: number;
  /** Entries the hardware declares: field + 1 with a table (cap or MSI-X), else 0. */
  stTableEntries: number;
  /** `pcie_tph_get_st_table_size`: field + 1 only for a table in the capability, else 0. */
  linuxStTableSize: number;
  control: TphControl;
}

export function decodeTphControl(reg: number): TphControl {
  return {
    stModeSelect: reg & PCI_TPH_CTRL_MODE_SEL_MASK,
    requesterEnable: (reg & PCI_TPH_CTRL_REQ_EN_MASK) >>> 8,
  };
}

/** Decodes a Requester Capability register value (no config access; never throws). */
export function decodeTphCapReg(
  capReg: number,
): Omit<TphCapability, "offset" | "version" | "ctrlReg" | "control" | "capReg"> {
  const loc = (capReg & PCI_TPH_CAP_LOC_MASK) >>> 9;
  const field = (capReg & PCI_TPH_CAP_ST_MASK) >>> PCI_TPH_CAP_ST_SHIFT;
  return {
    noStMode: (capReg & PCI_TPH_CAP_ST_NS) !== 0,
    intVectorMode: (capReg & PCI_TPH_CAP_ST_IV) !== 0,
    deviceSpecificMode: (capReg & PCI_TPH_CAP_ST_DS) !== 0,
    extendedRequester: (capReg & PCI_TPH_CAP_EXT_TPH) !== 0,
    stTableLoc: loc,
    stTableLocation: LOCATION_NAMES[loc],
    stTableSizeField: field,
    stTableEntries: loc === 1 || loc === 2 ? field + 1 : 0,
    linuxStTableSize: loc === 1 ? field + 1 : 0,
  };
}

const configOf = (src: PciDev | ConfigSpace): ConfigSpace => (src instanceof ConfigSpace ? src : src.config);

/**
 * Reads the first TPH Requester capability. null when there is none; an {@link InputError} when
 * the capability's registers run past the bytes the config space has (a truncated dump).
 */
export function readTphCapability(src: PciDev | ConfigSpace): TphCapability | null {
  const cfg = configOf(src);
  const ref = cfg.extCapabilities().find((c) => c.id === PCI_EXT_CAP_ID_TPH);
  if (!ref) return null;
  if (ref.offset + PCI_TPH_BASE_SIZEOF > cfg.size)
    throw new InputError(
      `TPH capability at 0x${ref.offset.toString(16)} is truncated: its registers end at 0x${(ref.offset + PCI_TPH_BASE_SIZEOF).toString(16)}, the config space has ${cfg.size} bytes`,
      src instanceof ConfigSpace ? undefined : `config space of ${src.bdf}`,
    );
  const capReg = cfg.read32(ref.offset + PCI_TPH_CAP);
  const ctrlReg = cfg.read32(ref.offset + PCI_TPH_CTRL);
  return {
    offset: ref.offset,
    version: ref.version ?? 0,
    capReg,
    ctrlReg,
    ...decodeTphCapReg(capReg),
    control: decodeTphControl(ctrlReg),
  };
}

/** Config offset of entry `i` of an ST table in the capability at `tphCap`. */
export function tphStEntryOffset(tphCap: number, i: number): number {
  return tphCap + PCI_TPH_BASE_SIZEOF + 2 * i;
}

/* ---------------------------------------------------------------------------------------------- */
/* lspci text (§2.3, §2.4)                                                                         */

/**
 * The TPH capability as `lspci` prints it (pciutils `cap_tph`), one string per line with
 * lspci's indentation: `verbose` 1 is `-v` (heading only), 2 is `-vv`. Every TPH capability
 * of the list is printed, as lspci does. null when the function has none; never throws.
 */
export function describeTph(src: PciDev | ConfigSpace, verbose = 2): string[] | null {
  const cfg = configOf(src);
  const refs = cfg.extCapabilities().filter((c) => c.id === PCI_EXT_CAP_ID_TPH);
  if (!refs.length) return null;
  const out: string[] = [];
  if (verbose < 1) return out;
  for (const ref of refs) {
    const ver = verbose >= 2 ? ` v${ref.version ?? 0}` : "";
    out.push(
      `\tCapabilities: [${ref.offset.toString(16).padStart(3, "0")}${ver}] Transaction Processing Hints`,
    );
    if (verbose < 2) continue;
    if (ref.offset + PCI_TPH_CAP + 4 > cfg.size) {
      out.push("\t\t<unreadable>");
      continue;
    }
    const cap = cfg.read32(ref.offset + PCI_TPH_CAP);
    if (cap & PCI_TPH_CAP_ST_IV) out.push("\t\tInterrupt vector mode supported");
    if (cap & PCI_TPH_CAP_ST_DS) out.push("\t\tDevice specific mode supported");
    if (cap & PCI_TPH_CAP_EXT_TPH) out.push("\t\tExtended requester support");
    switch (cap & PCI_TPH_CAP_LOC_MASK) {
      case PCI_TPH_LOC_NONE:
        out.push("\t\tNo steering table available");
        break;
      case PCI_TPH_LOC_CAP:
        out.push("\t\tSteering table in TPH capability structure");
        break;
      case PCI_TPH_LOC_MSIX:
        out.push("\t\tSteering table in MSI-X table");
        break;
      default:
        out.push("\t\tReserved steering table location");
    }
  }
  return out;
}

const TPH_COMPLETER_TEXT = ["TPHComp- ExtTPHComp-", "TPHComp+ ExtTPHComp-", "", "TPHComp+ ExtTPHComp+"];

/**
 * The DevCap2 TPH completer text lspci prints after a separating space (§2.3): decoded from the
 * two-bit field value, so the reserved value 2 gives "" (only the space is printed). null when
 * lspci prints nothing for it: not a Root Port or PCI Express Endpoint, no PCIe capability,
 * capability version 1 (no DevCap2 line), or DevCap2 beyond the bytes read. Never throws.
 */
export function describeTphCompleter(src: PciDev | ConfigSpace): string | null {
  const cfg = configOf(src);
  const o = cfg.findCapability(PCI_CAP_ID_EXP);
  if (!o || o + PCI_EXP_DEVCAP2 + 4 > cfg.size) return null;
  const flags = cfg.read16(o + PCI_EXP_FLAGS);
  if ((flags & 0xf) < 2) return null;
  const type = (flags >> 4) & 0xf;
  if (type !== PCI_EXP_TYPE.ROOT_PORT && type !== PCI_EXP_TYPE.ENDPOINT) return null;
  return TPH_COMPLETER_TEXT[(cfg.read32(o + PCI_EXP_DEVCAP2) & PCI_EXP_DEVCAP2_TPH_COMP_MASK) >>> 12];
}

/* ---------------------------------------------------------------------------------------------- */
/* PCIe helpers the core uses                                                                      */

/** `pcie_find_root_port`: `dev` itself or the first Root Port on its way up; null if none. */
export function pcieFindRootPort(dev: PciDev): PciDev | null {
  for (let d: PciDev | null = dev; d; d = Fabric.upstreamBridge(d))
    if (d.isPcie && d.pcieType === PCI_EXP_TYPE.ROOT_PORT) return d;
  return null;
}

/**
 * `pcie_capability_read_dword(dev, PCI_EXP_DEVCAP2)`: DevCap2 exists from capability version 2;
 * before that (or without a PCIe capability) the kernel reads 0.
 */
function readDevCap2(dev: PciDev): number {
  const o = dev.pcieCapOffset;
  if (!o || (dev.config.read16(o + PCI_EXP_FLAGS) & 0xf) < 2) return 0;
  return dev.config.read32(o + PCI_EXP_DEVCAP2);
}

/** DevCap2[13:12] raw (0..3), as `get_rp_completer_type` uses it. */
export function tphCompleterField(dev: PciDev): number {
  return (readDevCap2(dev) & PCI_EXP_DEVCAP2_TPH_COMP_MASK) >>> 12;
}

/* ---------------------------------------------------------------------------------------------- */
/* MSI-X table: device memory behind a BAR                                                         */

/**
 * A function's MSI-X table: `size` entries of 16 bytes (message address low/high, data, vector
 * control) living at `offset` in BAR `bir`. Bytes are little-endian like the hardware. The
 * Vector Control mask bit resets to 1 (every vector masked).
 */
export class MsixTable {
  readonly bytes: Uint8Array;
  private readonly view: DataView;

  constructor(
    readonly dev: PciDev,
    readonly capOffset: number,
    readonly size: number,
    readonly bir: number,
    readonly offset: number,
  ) {
    this.bytes = new Uint8Array(size * PCI_MSIX_ENTRY_SIZE);
    this.view = new DataView(this.bytes.buffer);
    for (let i = 0; i < size; i++)
      this.writeEntry(i, PCI_MSIX_ENTRY_VECTOR_CTRL, PCI_MSIX_ENTRY_CTRL_MASKBIT);
  }

  /** Reads the table's location from the MSI-X capability; null without one. */
  static of(dev: PciDev): MsixTable | null {
    const o = dev.config.findCapability(PCI_CAP_ID_MSIX);
    if (!o) return null;
    const size = (dev.config.read16(o + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_QSIZE) + 1;
    const t = dev.config.read32(o + PCI_MSIX_TABLE);
    return new MsixTable(dev, o, size, t & PCI_MSIX_TABLE_BIR, (t & PCI_MSIX_TABLE_OFFSET) >>> 0);
  }

  /** Whether the table sits inside an implemented memory BAR (what `msix_map_region` needs). */
  get mappable(): boolean {
    if (this.bir > 5) return false;
    const r = this.dev.resources[this.bir];
    if (!r || !(r.flags & IORESOURCE_MEM)) return false;
    return BigInt(this.offset) + BigInt(this.bytes.length) <= r.len;
  }

  /** Bus address of entry `i` (BAR bus address + table offset + 16·i). */
  entryBusAddress(i: number): bigint {
    return this.dev.busAddress(this.bir) + BigInt(this.offset + i * PCI_MSIX_ENTRY_SIZE);
  }

  readEntry(i: number, reg: number): number {
    this.check(i, reg);
    return this.view.getUint32(i * PCI_MSIX_ENTRY_SIZE + reg, true);
  }
  writeEntry(i: number, reg: number, v: number): void {
    this.check(i, reg);
    this.view.setUint32(i * PCI_MSIX_ENTRY_SIZE + reg, v >>> 0, true);
  }
  vectorCtrl(i: number): number {
    return this.readEntry(i, PCI_MSIX_ENTRY_VECTOR_CTRL);
  }
  /** The steering tag held in bits 31:16 of entry `i`'s Vector Control. */
  steeringTag(i: number): number {
    return this.vectorCtrl(i) >>> 16;
  }

  private check(i: number, reg: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.size || (reg & 3) !== 0 || reg < 0 || reg > 0xc)
      throw new KernelBug(
        "msix table",
        `${this.dev.bdf}: no register ${reg} in entry ${i} (${this.size} entries)`,
      );
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* Linux TPH core (§4)                                                                             */

/** The TPH fields of `struct pci_dev`. */
export interface TphDevState {
  enabled: boolean;
  mode: number;
  reqType: number;
}

/** One CPU's steering tags as the platform (_DSM rev 7, function 0xF) reports them; absent = not valid. */
export interface CpuSteeringTag {
  st8?: number;
  st16?: number;
}
export interface CpuSteeringTags {
  volatile?: CpuSteeringTag;
  persistent?: CpuSteeringTag;
}

export interface TphCoreOptions {
  /** Kernel parameter `pci=notph` (§4): every enable fails. */
  notph?: boolean;
  /** CONFIG_PCIE_TPH (default true). Off: no `tph_cap`, the header stubs answer. */
  configPcieTph?: boolean;
  /** Platform steering tags per CPU UID, for `pcie_tph_get_cpu_st`. */
  cpuSteeringTags?: Record<number, CpuSteeringTags>;
}

/** What `pci_save_tph_state` keeps: Control, then the in-capability ST entries. */
export interface TphSavedState {
  ctrl: number;
  entries: number[];
}

interface MsixState {
  table: MsixTable;
  enabled: boolean;
  vectors: number;
}

/**
 * Linux's TPH core for one machine: `pcie_enable_tph`, `pcie_disable_tph`,
 * `pcie_tph_set_st_entry`, `pcie_tph_get_cpu_st`, save/restore, the table helpers, and the
 * series' `pcie_tph_enabled_req_type` / `pcie_tph_completer_type`. Failures throw
 * {@link KernelError}; the checks run in the order of tph-and-tlp §4.
 */
export class TphCore {
  readonly notph: boolean;
  readonly configPcieTph: boolean;
  private readonly cpuTags: Map<number, CpuSteeringTags>;
  private readonly states = new Map<PciDev, TphDevState>();
  private readonly saved = new Map<PciDev, TphSavedState>();
  private readonly msixStates = new Map<PciDev, MsixState>();

  constructor(
    readonly fabric: Fabric,
    opts: TphCoreOptions = {},
  ) {
    this.notph = opts.notph ?? false;
    this.configPcieTph = opts.configPcieTph ?? true;
    this.cpuTags = new Map(Object.entries(opts.cpuSteeringTags ?? {}).map(([k, v]) => [Number(k), v]));
  }

  /** Sets (or with undefined removes) the platform's steering tags for one CPU UID. */
  setCpuSteeringTags(cpuUid: number, tags: CpuSteeringTags | undefined): void {
    if (tags) this.cpuTags.set(cpuUid, tags);
    else this.cpuTags.delete(cpuUid);
  }

  /** `pdev->tph_cap` as `pci_tph_init` finds it (0 = none, and always 0 without CONFIG_PCIE_TPH). */
  tphCap(dev: PciDev): number {
    return this.configPcieTph ? dev.config.findExtCapability(PCI_EXT_CAP_ID_TPH) : 0;
  }

  /** A copy of the device's TPH state. */
  state(dev: PciDev): TphDevState {
    return { ...this.st(dev) };
  }

  private st(dev: PciDev): TphDevState {
    let s = this.states.get(dev);
    if (!s) {
      s = { enabled: false, mode: 0, reqType: 0 };
      this.states.set(dev, s);
    }
    return s;
  }

  /** Reads the capability register the way the kernel does: at `tph_cap + 4`, whatever is there. */
  private capReg(dev: PciDev): number {
    return dev.config.read32(this.tphCap(dev) + PCI_TPH_CAP);
  }

  /** `pcie_tph_get_st_table_loc`: the location field value 0..3. */
  pcieTphGetStTableLoc(dev: PciDev): number {
    if (!this.configPcieTph) return 0;
    return (this.capReg(dev) & PCI_TPH_CAP_LOC_MASK) >>> 9;
  }

  /** `pcie_tph_get_st_table_size`: 0 unless the table is in the capability, else field + 1. */
  pcieTphGetStTableSize(dev: PciDev): number {
    if (!this.configPcieTph) return 0;
    if (this.pcieTphGetStTableLoc(dev) << 9 !== PCI_TPH_LOC_CAP) return 0;
    return ((this.capReg(dev) & PCI_TPH_CAP_ST_MASK) >>> PCI_TPH_CAP_ST_SHIFT) + 1;
  }

  /** `pcie_enable_tph(pdev, mode)` (§4, checks 1–8 in order). */
  pcieEnableTph(dev: PciDev, mode: number): void {
    if (!this.configPcieTph) throw new KernelError("EINVAL", "pcie_enable_tph: CONFIG_PCIE_TPH=n");
    if (this.notph) throw new KernelError("EINVAL", "pcie_enable_tph: pci=notph", "TPH-10");
    const cap = this.tphCap(dev);
    if (!cap) throw new KernelError("EINVAL", "pcie_enable_tph: no TPH capability", "TPH-3");
    const s = this.st(dev);
    if (s.enabled) throw new KernelError("EBUSY", "pcie_enable_tph: already enabled", "TPH-10");
    mode &= PCI_TPH_CTRL_MODE_SEL_MASK;
    const capReg = dev.config.read32(cap + PCI_TPH_CAP);
    const modes = capReg & (PCI_TPH_CAP_ST_NS | PCI_TPH_CAP_ST_IV | PCI_TPH_CAP_ST_DS);
    // Modes 3..7 have no support bit, so they always fail here.
    if (!((1 << mode) & modes))
      throw new KernelError("EINVAL", "pcie_enable_tph: ST mode not supported", "TPH-10", `mode ${mode}`);
    s.mode = mode; // stored before the request-type check, and kept if it fails
    s.reqType = capReg & PCI_TPH_CAP_EXT_TPH ? PCI_TPH_REQ_EXT_TPH : PCI_TPH_REQ_TPH_ONLY;
    // RC-integrated endpoints have no Root Port to ask (TPH-9).
    if (dev.pcieType !== PCI_EXP_TYPE.RC_END) {
      const rp = pcieFindRootPort(dev);
      // The raw field: a Root Port reporting the reserved value 2 yields req_type 2 (TPH-8).
      const rpType = rp ? tphCompleterField(rp) : 0;
      s.reqType = Math.min(s.reqType, rpType);
    }
    if (s.reqType === PCI_TPH_REQ_DISABLE)
      throw new KernelError("EINVAL", "pcie_enable_tph: Root Port is not a TPH completer", "TPH-7");
    let ctrl = dev.config.read32(cap + PCI_TPH_CTRL);
    ctrl = (ctrl & ~PCI_TPH_CTRL_MODE_SEL_MASK) | s.mode;
    ctrl = (ctrl & ~PCI_TPH_CTRL_REQ_EN_MASK) | (s.reqType << 8);
    dev.config.write32(cap + PCI_TPH_CTRL, ctrl);
    s.enabled = true;
  }

  /** `pcie_disable_tph`: nothing unless enabled; else Control = 0 and the state cleared. */
  pcieDisableTph(dev: PciDev): void {
    const cap = this.tphCap(dev);
    if (!cap) return;
    const s = this.st(dev);
    if (!s.enabled) return;
    dev.config.write32(cap + PCI_TPH_CTRL, 0);
    s.mode = 0;
    s.reqType = 0;
    s.enabled = false;
  }

  /** `set_ctrl_reg_req_en`: replaces Requester Enable, keeps the other Control bits. */
  private setCtrlReqEn(dev: PciDev, cap: number, reqType: number): void {
    const ctrl = dev.config.read32(cap + PCI_TPH_CTRL);
    dev.config.write32(cap + PCI_TPH_CTRL, (ctrl & ~PCI_TPH_CTRL_REQ_EN_MASK) | ((reqType << 8) & 0x300));
  }

  /**
   * `pcie_tph_set_st_entry(pdev, index, tag)`. Requester Enable is 0 while the entry is
   * written; any failure disables TPH on the whole function before the error is returned.
   */
  pcieTphSetStEntry(dev: PciDev, index: number, tag: number): void {
    if (!this.configPcieTph) throw new KernelError("EINVAL", "pcie_tph_set_st_entry: CONFIG_PCIE_TPH=n");
    index >>>= 0; // unsigned int
    tag &= 0xffff; // u16
    const cap = this.tphCap(dev);
    if (!cap) throw new KernelError("EINVAL", "pcie_tph_set_st_entry: no TPH capability");
    const s = this.st(dev);
    if (!s.enabled) throw new KernelError("EINVAL", "pcie_tph_set_st_entry: TPH not enabled");
    if (s.mode === PCI_TPH_ST_NS_MODE) return; // TPH-12: nothing to write in No ST mode
    this.setCtrlReqEn(dev, cap, PCI_TPH_REQ_DISABLE);
    let err: KernelError | null = null;
    switch (this.pcieTphGetStTableLoc(dev) << 9) {
      case PCI_TPH_LOC_MSIX:
        try {
          this.pciMsixWriteTphTag(dev, index, tag);
        } catch (e) {
          if (!(e instanceof KernelError)) throw e;
          err = e;
        }
        break;
      case PCI_TPH_LOC_CAP:
        if (index >= this.pcieTphGetStTableSize(dev))
          err = new KernelError(
            "ENXIO",
            "pcie_tph_set_st_entry: index beyond the ST table",
            "TPH-11",
            `index ${index}`,
          );
        else dev.config.write16(tphStEntryOffset(cap, index), tag);
        break;
      default:
        err = new KernelError("EINVAL", "pcie_tph_set_st_entry: no ST table");
    }
    if (err) {
      this.pcieDisableTph(dev);
      throw err;
    }
    this.setCtrlReqEn(dev, cap, s.reqType);
  }

  /**
   * `pcie_tph_get_cpu_st(pdev, mem_type, cpu_uid)`: the platform's tag for that CPU, 8- or 16-bit
   * by the device's `tph_req_type` (0 for any other request type or an invalid entry).
   */
  pcieTphGetCpuSt(dev: PciDev, memType: TphMemType, cpuUid: number): number {
    if (!this.configPcieTph) throw new KernelError("EINVAL", "pcie_tph_get_cpu_st: CONFIG_PCIE_TPH=n");
    // The _DSM is evaluated on the Root Port's host bridge.
    if (!pcieFindRootPort(dev)) throw new KernelError("ENODEV", "pcie_tph_get_cpu_st: no Root Port");
    const info = this.cpuTags.get(cpuUid >>> 0);
    if (!info) throw new KernelError("EINVAL", "pcie_tph_get_cpu_st: _DSM has no steering tag for this CPU");
    const mem =
      memType === TPH_MEM_TYPE_VM ? info.volatile : memType === TPH_MEM_TYPE_PM ? info.persistent : undefined;
    const reqType = this.st(dev).reqType;
    if (reqType === PCI_TPH_REQ_TPH_ONLY) return (mem?.st8 ?? 0) & 0xff;
    if (reqType === PCI_TPH_REQ_EXT_TPH) return (mem?.st16 ?? 0) & 0xffff;
    return 0;
  }

  /** `pcie_tph_enabled_req_type` (series v7 patch 2): `tph_req_type`, 0 when disabled (may be 2). */
  pcieTphEnabledReqType(dev: PciDev): number {
    if (!this.configPcieTph) return 0;
    const s = this.st(dev);
    return s.enabled ? s.reqType : PCI_TPH_REQ_DISABLE;
  }

  /** `pcie_tph_completer_type` (series v7 patch 2): own DevCap2[13:12], reserved 2 folded to 0. */
  pcieTphCompleterType(dev: PciDev): number {
    if (!this.configPcieTph) return 0;
    const t = tphCompleterField(dev);
    return t === 2 ? 0 : t;
  }

  /** `pci_save_tph_state`: Control and the in-capability ST entries, only while enabled. */
  pciSaveTphState(dev: PciDev): TphSavedState | null {
    const cap = this.tphCap(dev);
    if (!cap || !this.st(dev).enabled) return null;
    const entries: number[] = [];
    const n = this.pcieTphGetStTableSize(dev);
    for (let i = 0; i < n; i++) entries.push(dev.config.read16(tphStEntryOffset(cap, i)));
    const saved = { ctrl: dev.config.read32(cap + PCI_TPH_CTRL), entries };
    this.saved.set(dev, saved);
    return { ctrl: saved.ctrl, entries: [...entries] };
  }

  /** `pci_restore_tph_state`: writes back what was saved, only while enabled. */
  pciRestoreTphState(dev: PciDev): void {
    const cap = this.tphCap(dev);
    if (!cap || !this.st(dev).enabled) return;
    const saved = this.saved.get(dev);
    if (!saved) return;
    dev.config.write32(cap + PCI_TPH_CTRL, saved.ctrl);
    const n = this.pcieTphGetStTableSize(dev);
    for (let i = 0; i < n; i++) dev.config.write16(tphStEntryOffset(cap, i), saved.entries[i] ?? 0);
  }

  /* ---- the parts of the MSI core TPH uses ---- */

  /** The function's MSI-X table (device memory), null without an MSI-X capability. */
  msixTable(dev: PciDev): MsixTable | null {
    return this.msix(dev)?.table ?? null;
  }

  private msix(dev: PciDev): MsixState | null {
    let m = this.msixStates.get(dev);
    if (!m) {
      const table = MsixTable.of(dev);
      if (!table) return null;
      m = { table, enabled: false, vectors: 0 };
      this.msixStates.set(dev, m);
    }
    return m;
  }

  /** `pdev->msix_enabled`. */
  msixEnabled(dev: PciDev): boolean {
    return this.msixStates.get(dev)?.enabled ?? false;
  }

  /** Vectors allocated (MSI-X indexes 0..n−1 have an IRQ). */
  msixVectors(dev: PciDev): number {
    const m = this.msixStates.get(dev);
    return m?.enabled ? m.vectors : 0;
  }

  /**
   * `pci_alloc_irq_vectors(dev, nvec, nvec, PCI_IRQ_MSIX)`: maps the table, allocates vectors
   * 0..nvec−1 and sets MSI-X Enable; the vectors stay masked.
   */
  pciEnableMsix(dev: PciDev, nvec: number): void {
    const m = this.msix(dev);
    if (!m) throw new KernelError("EINVAL", "pci_enable_msix: no MSI-X capability");
    if (m.enabled) throw new KernelError("EINVAL", "pci_enable_msix: MSI-X already enabled");
    if (!Number.isInteger(nvec) || nvec < 1)
      throw new KernelError("ERANGE", "pci_enable_msix: no vectors asked");
    if (nvec > m.table.size)
      throw new KernelError("ENOSPC", "pci_enable_msix: more vectors than table entries");
    if (!m.table.mappable) throw new KernelError("ENOMEM", "msix_map_region: table not inside a memory BAR");
    const o = m.table.capOffset;
    dev.config.write16(
      o + PCI_MSIX_FLAGS,
      (dev.config.read16(o + PCI_MSIX_FLAGS) & ~PCI_MSIX_FLAGS_MASKALL) | PCI_MSIX_FLAGS_ENABLE,
    );
    m.enabled = true;
    m.vectors = nvec;
  }

  /** `pci_free_irq_vectors` for MSI-X: Enable cleared; the table keeps its contents. */
  pciDisableMsix(dev: PciDev): void {
    const m = this.msixStates.get(dev);
    if (!m?.enabled) return;
    const o = m.table.capOffset;
    dev.config.write16(o + PCI_MSIX_FLAGS, dev.config.read16(o + PCI_MSIX_FLAGS) & ~PCI_MSIX_FLAGS_ENABLE);
    m.enabled = false;
    m.vectors = 0;
  }

  /**
   * `pci_msix_write_tph_tag`: the tag into bits 31:16 of the vector's Vector Control, other bits
   * (the mask bit) kept. MSI-X not enabled or no vector at `index` → -ENXIO.
   */
  pciMsixWriteTphTag(dev: PciDev, index: number, tag: number): void {
    const m = this.msixStates.get(dev);
    if (!m?.enabled) throw new KernelError("ENXIO", "pci_msix_write_tph_tag: MSI-X not enabled", "TPH-13");
    if (index >= m.vectors)
      throw new KernelError(
        "ENXIO",
        "pci_msix_write_tph_tag: no vector at index",
        "TPH-13",
        `index ${index}`,
      );
    const ctrl = m.table.vectorCtrl(index);
    m.table.writeEntry(
      index,
      PCI_MSIX_ENTRY_VECTOR_CTRL,
      (ctrl & ~PCI_MSIX_ENTRY_CTRL_ST) | ((tag & 0xffff) << 16),
    );
  }
}
