/**
 * Capability helpers: each owns its registers and knows how to lay them out in config space,
 * the way QEMU composes a device from pcie_cap_init / pcie_acs_init / … (STYLE.md).
 * A machine file names the helpers a function has; {@link buildConfigSpace} places them.
 */
import { InputError } from "../core/errors.js";
import { ConfigSpace } from "./config-space.js";
import {
  PCI_ACS_CAP,
  PCI_ACS_CTRL,
  PCI_ACS_EC,
  PCI_AF_CAP,
  PCI_AF_CAP_FLR,
  PCI_AF_CAP_TP,
  PCI_CAP_ID_AF,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CAPABILITY_LIST,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_EXT_TAG,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCAP2,
  PCI_EXP_DEVCAP2_10BIT_TAG_COMP,
  PCI_EXP_DEVCAP2_10BIT_TAG_REQ,
  PCI_EXP_DEVCAP2_EE_PREFIX,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_EXT_TAG,
  PCI_EXP_FLAGS,
  PCI_EXP_LNKCAP,
  PCI_EXP_LNKCAP2,
  PCI_EXP_LNKCTL,
  PCI_EXP_LNKCTL_RCB,
  PCI_EXP_LNKSTA,
  PCI_EXP_LNKSTA2,
  PCI_EXT_CAP_ID_ACS,
  PCI_EXT_CAP_ID_ARI,
  PCI_EXT_CAP_ID_ATS,
  PCI_EXT_CAP_ID_DSN,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_ID_PRI,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_EXT_CAP_ID_TPH,
  PCI_PM_CTRL,
  PCI_PM_CTRL_NO_SOFT_RESET,
  PCI_SRIOV_CAP,
  PCI_SRIOV_CTRL,
  PCI_SRIOV_CTRL_ARI,
  PCI_SRIOV_CTRL_VFE,
  PCI_SRIOV_INITIAL_VF,
  PCI_SRIOV_NUM_VF,
  PCI_SRIOV_SUP_PGSIZE,
  PCI_SRIOV_SYS_PGSIZE,
  PCI_SRIOV_TOTAL_VF,
  PCI_SRIOV_VF_DID,
  PCI_SRIOV_VF_OFFSET,
  PCI_SRIOV_VF_STRIDE,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_TPH_BASE_SIZEOF,
  PCI_TPH_CAP,
  PCI_TPH_CTRL,
  speedCodeOf,
} from "./regs.js";

export interface CapabilityHelper {
  space: "std" | "ext";
  id: number;
  /** Bytes the capability occupies (header included). */
  size: number;
  /** Extended capability version (header bits 19:16). */
  version?: number;
  init(cfg: ConfigSpace, offset: number): void;
}

export type PcieType = number;

export interface LinkParams {
  /** Negotiated speed in GT/s (LnkSta) and width. */
  speed: number;
  width: number;
  /** Capability (LnkCap); defaults to the negotiated values. */
  maxSpeed?: number;
  maxWidth?: number;
  /** Link is in flit mode (PCIe 6.0+). */
  flit?: boolean;
}

export interface PcieCapParams {
  type: PcieType;
  link?: LinkParams;
  /** Max payload supported (bytes) and programmed MPS / MRRS (bytes). */
  mpsSupported?: number;
  mps?: number;
  mrrs?: number;
  flr?: boolean;
  extTag?: boolean;
  tenBitTag?: boolean;
  /** Root port/bridge: Read Completion Boundary 128 (else 64). */
  rcb128?: boolean;
  /** DEVCAP2 TPH completer: none, tph (TPH only), ext (TPH and extended TPH). */
  tphCompleter?: "none" | "tph" | "ext";
  /** DEVCAP2 End-End TLP Prefix Supported (needed on every port an ExtTPH prefix crosses, TPH-30). */
  eeTlpPrefix?: boolean;
  slot?: boolean;
  portNumber?: number;
}

const sizeCode = (bytes: number) => Math.max(0, Math.min(5, Math.log2(bytes / 128) | 0));

/** PCI Express capability, version 2 (60 bytes). */
export function pcieCap(p: PcieCapParams): CapabilityHelper {
  return {
    space: "std",
    id: PCI_CAP_ID_EXP,
    size: 0x3c,
    init(cfg, o) {
      let flags = 0x2 | ((p.type & 0xf) << 4);
      if (p.slot) flags |= 0x100;
      if (p.link?.flit) flags |= 0x8000;
      cfg.write16(o + PCI_EXP_FLAGS, flags);
      let devcap = sizeCode(p.mpsSupported ?? 256) & 7;
      if (p.extTag ?? true) devcap |= PCI_EXP_DEVCAP_EXT_TAG;
      if (p.flr) devcap |= PCI_EXP_DEVCAP_FLR;
      cfg.write32(o + PCI_EXP_DEVCAP, devcap);
      let devctl = (sizeCode(p.mps ?? 128) << 5) | (sizeCode(p.mrrs ?? 512) << 12);
      if (p.extTag ?? true) devctl |= PCI_EXP_DEVCTL_EXT_TAG;
      cfg.write16(o + PCI_EXP_DEVCTL, devctl);
      if (p.link) {
        const maxSpeed = p.link.maxSpeed ?? p.link.speed;
        const maxWidth = p.link.maxWidth ?? p.link.width;
        cfg.write32(
          o + PCI_EXP_LNKCAP,
          (speedCodeOf(maxSpeed) & 0xf) | ((maxWidth & 0x3f) << 4) | ((p.portNumber ?? 0) << 24),
        );
        cfg.write16(o + PCI_EXP_LNKCTL, p.rcb128 ? PCI_EXP_LNKCTL_RCB : 0);
        cfg.write16(o + PCI_EXP_LNKSTA, (speedCodeOf(p.link.speed) & 0xf) | ((p.link.width & 0x3f) << 4));
        let vector = 0;
        for (let c = 1; c <= speedCodeOf(maxSpeed); c++) vector |= 1 << c;
        cfg.write32(o + PCI_EXP_LNKCAP2, vector);
        if (p.link.flit) cfg.write16(o + PCI_EXP_LNKSTA2, 1 << 10);
      }
      let devcap2 = 0;
      if (p.tphCompleter === "tph") devcap2 |= 0x1000;
      if (p.tphCompleter === "ext") devcap2 |= 0x3000;
      if (p.tenBitTag) devcap2 |= PCI_EXP_DEVCAP2_10BIT_TAG_COMP | PCI_EXP_DEVCAP2_10BIT_TAG_REQ;
      if (p.eeTlpPrefix) devcap2 |= PCI_EXP_DEVCAP2_EE_PREFIX;
      cfg.write32(o + PCI_EXP_DEVCAP2, devcap2);
    },
  };
}

/** Access Control Services: `cap` = implemented controls, `ctrl` = enabled ones. */
export function acsCap(p: { cap: number; ctrl: number; egressBits?: number }): CapabilityHelper {
  const egressBytes = p.cap & PCI_ACS_EC ? Math.ceil((p.egressBits ?? 256) / 32) * 4 : 0;
  return {
    space: "ext",
    id: PCI_EXT_CAP_ID_ACS,
    version: 1,
    size: 8 + egressBytes,
    init(cfg, o) {
      const egressField = p.cap & PCI_ACS_EC ? ((p.egressBits ?? 256) & 0xff) << 8 : 0;
      cfg.write16(o + PCI_ACS_CAP, (p.cap & 0x7f) | egressField);
      cfg.write16(o + PCI_ACS_CTRL, p.ctrl & 0x7f);
    },
  };
}

/** Power management (8 bytes). */
export function pmCap(p: { noSoftReset?: boolean } = {}): CapabilityHelper {
  return {
    space: "std",
    id: PCI_CAP_ID_PM,
    size: 8,
    init(cfg, o) {
      cfg.write16(o + 2, 0x3); // version 3
      cfg.write16(o + PCI_PM_CTRL, p.noSoftReset ? PCI_PM_CTRL_NO_SOFT_RESET : 0);
    },
  };
}

/** Advanced Features (conventional PCI FLR). */
export function afCap(p: { flr?: boolean; tp?: boolean } = {}): CapabilityHelper {
  return {
    space: "std",
    id: PCI_CAP_ID_AF,
    size: 6,
    init(cfg, o) {
      cfg.write8(o + 2, 6);
      cfg.write8(o + PCI_AF_CAP, (p.tp ? PCI_AF_CAP_TP : 0) | (p.flr ? PCI_AF_CAP_FLR : 0));
    },
  };
}

export interface MsixCapParams {
  tableSize: number;
  /** BAR (BIR) holding the table and its offset in it (8-byte aligned); default BAR0 at 0. */
  tableBir?: number;
  tableOffset?: number;
  /** BAR and offset of the Pending Bit Array; default right after the table in the same BAR. */
  pbaBir?: number;
  pbaOffset?: number;
}

export function msixCap(p: MsixCapParams): CapabilityHelper {
  return {
    space: "std",
    id: PCI_CAP_ID_MSIX,
    size: 12,
    init(cfg, o) {
      cfg.write16(o + 2, (p.tableSize - 1) & 0x7ff);
      // Table Offset/BIR and PBA Offset/BIR (+4, +8): offset bits 31:3, BIR bits 2:0.
      if (p.tableBir !== undefined || p.tableOffset !== undefined) {
        const tableOffset = (p.tableOffset ?? 0) & ~7;
        cfg.write32(o + 4, (tableOffset | ((p.tableBir ?? 0) & 7)) >>> 0);
        const pbaOffset = (p.pbaOffset ?? tableOffset + p.tableSize * 16) & ~7;
        cfg.write32(o + 8, (pbaOffset | ((p.pbaBir ?? p.tableBir ?? 0) & 7)) >>> 0);
      }
    },
  };
}

export interface SriovParams {
  totalVfs: number;
  numVfs: number;
  vfOffset: number;
  vfStride: number;
  vfDevice: number;
  enabled?: boolean;
}

/** SR-IOV (0x40 bytes). */
export function sriovCap(p: SriovParams): CapabilityHelper {
  return {
    space: "ext",
    id: PCI_EXT_CAP_ID_SRIOV,
    version: 1,
    size: 0x40,
    init(cfg, o) {
      cfg.write32(o + PCI_SRIOV_CAP, 0);
      cfg.write16(
        o + PCI_SRIOV_CTRL,
        (p.enabled ?? p.numVfs > 0) ? PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_ARI : 0,
      );
      cfg.write16(o + PCI_SRIOV_INITIAL_VF, p.totalVfs);
      cfg.write16(o + PCI_SRIOV_TOTAL_VF, p.totalVfs);
      cfg.write16(o + PCI_SRIOV_NUM_VF, p.numVfs);
      cfg.write16(o + PCI_SRIOV_VF_OFFSET, p.vfOffset);
      cfg.write16(o + PCI_SRIOV_VF_STRIDE, p.vfStride);
      cfg.write16(o + PCI_SRIOV_VF_DID, p.vfDevice);
      cfg.write32(o + PCI_SRIOV_SUP_PGSIZE, 0x553);
      cfg.write32(o + PCI_SRIOV_SYS_PGSIZE, 0x1);
    },
  };
}

/** Alternative Routing-ID Interpretation (8 bytes). */
export function ariCap(p: { nextFunction?: number } = {}): CapabilityHelper {
  return {
    space: "ext",
    id: PCI_EXT_CAP_ID_ARI,
    version: 1,
    size: 8,
    init(cfg, o) {
      cfg.write16(o + 4, ((p.nextFunction ?? 0) & 0xff) << 8);
    },
  };
}

export function atsCap(): CapabilityHelper {
  return { space: "ext", id: PCI_EXT_CAP_ID_ATS, version: 1, size: 8, init: () => {} };
}
export function priCap(): CapabilityHelper {
  return { space: "ext", id: PCI_EXT_CAP_ID_PRI, version: 1, size: 0x10, init: () => {} };
}
export function pasidCap(p: { widthBits?: number } = {}): CapabilityHelper {
  return {
    space: "ext",
    id: PCI_EXT_CAP_ID_PASID,
    version: 1,
    size: 8,
    init(cfg, o) {
      cfg.write16(o + 4, ((p.widthBits ?? 20) & 0x1f) << 8);
    },
  };
}

export function dsnCap(serial: bigint): CapabilityHelper {
  return {
    space: "ext",
    id: PCI_EXT_CAP_ID_DSN,
    version: 1,
    size: 12,
    init(cfg, o) {
      cfg.write32(o + 4, Number(serial & 0xffffffffn));
      cfg.write32(o + 8, Number((serial >> 32n) & 0xffffffffn));
    },
  };
}

export interface TphRequesterParams {
  noStMode?: boolean;
  intVectorMode?: boolean;
  deviceSpecificMode?: boolean;
  extendedRequester?: boolean;
  /** Where the steering-tag table lives. */
  stTable?: "none" | "cap" | "msix";
  stTableSize?: number;
  /**
   * The whole Requester Capability register as read from hardware (tph-and-tlp §2.1); when
   * given it replaces the fields above, so reserved locations and bits can be modelled.
   */
  capReg?: number;
  /** Initial TPH Requester Control register (default 0: disabled, No ST mode). */
  control?: number;
  /** Initial 16-bit entries of an ST table in the capability (entry i at +0x0C + 2·i). */
  stEntries?: number[];
}

/** TPH requester capability; an ST table "in the capability" follows the 12-byte base. */
export function tphRequesterCap(p: TphRequesterParams): CapabilityHelper {
  let loc = p.stTable === "cap" ? 1 : p.stTable === "msix" ? 2 : 0;
  let entries = loc ? (p.stTableSize ?? 1) : 0;
  if (p.capReg !== undefined) {
    loc = (p.capReg >>> 9) & 3;
    entries = loc === 1 || loc === 2 ? ((p.capReg >>> 16) & 0x7ff) + 1 : 0;
  }
  return {
    space: "ext",
    id: PCI_EXT_CAP_ID_TPH,
    version: 1,
    size: 0xc + (loc === 1 ? Math.ceil((entries * 2) / 4) * 4 : 0),
    init(cfg, o) {
      let cap = (p.noStMode ?? true) ? 1 : 0;
      if (p.intVectorMode) cap |= 2;
      if (p.deviceSpecificMode) cap |= 4;
      if (p.extendedRequester) cap |= 0x100;
      cap |= loc << 9;
      if (entries) cap |= ((entries - 1) & 0x7ff) << 16;
      cfg.write32(o + PCI_TPH_CAP, p.capReg ?? cap);
      if (p.control !== undefined) cfg.write32(o + PCI_TPH_CTRL, p.control);
      if (loc === 1)
        p.stEntries?.slice(0, entries).forEach((st, i) => {
          cfg.write16(o + PCI_TPH_BASE_SIZEOF + 2 * i, st);
        });
    },
  };
}

export interface HeaderParams {
  vendor: number;
  device: number;
  classCode: number;
  revision?: number;
  headerType: number;
  subsystemVendor?: number;
  subsystemDevice?: number;
  command?: number;
}

/**
 * Lays out a configuration space: header, then standard capabilities from 0x40 (linked from
 * 0x34), then extended capabilities from 0x100. 4096 bytes when any PCIe capability is present,
 * 256 otherwise (conventional PCI).
 */
export function buildConfigSpace(h: HeaderParams, caps: CapabilityHelper[]): ConfigSpace {
  const pcie = caps.some((c) => c.id === PCI_CAP_ID_EXP && c.space === "std");
  const cfg = new ConfigSpace(pcie ? 4096 : 256);
  cfg.write16(0x00, h.vendor);
  cfg.write16(0x02, h.device);
  cfg.write16(0x04, h.command ?? 0);
  cfg.write8(0x08, h.revision ?? 0);
  cfg.write8(0x09, h.classCode & 0xff);
  cfg.write16(0x0a, (h.classCode >> 8) & 0xffff);
  cfg.write8(0x0e, h.headerType);
  if ((h.headerType & 0x7f) === 0) {
    cfg.write16(0x2c, h.subsystemVendor ?? 0);
    cfg.write16(0x2e, h.subsystemDevice ?? 0);
  }
  const std = caps.filter((c) => c.space === "std");
  const ext = caps.filter((c) => c.space === "ext");
  let off = 0x40;
  let prevNext = PCI_CAPABILITY_LIST;
  for (const c of std) {
    if (off + c.size > 0x100)
      throw new InputError(
        `standard capabilities do not fit in 256 bytes (at capability id 0x${c.id.toString(16)})`,
      );
    cfg.write8(prevNext, off);
    cfg.write8(off, c.id);
    cfg.write8(off + 1, 0);
    c.init(cfg, off);
    prevNext = off + 1;
    off = (off + c.size + 3) & ~3;
  }
  if (std.length) cfg.write16(PCI_STATUS, cfg.read16(PCI_STATUS) | PCI_STATUS_CAP_LIST);
  if (ext.length && !pcie) throw new InputError("extended capabilities need a PCIe (4 KiB) config space");
  off = 0x100;
  for (let i = 0; i < ext.length; i++) {
    const c = ext[i];
    const next = i + 1 < ext.length ? (off + c.size + 3) & ~3 : 0;
    if (off + c.size > 0x1000)
      throw new InputError(
        `extended capabilities do not fit in 4096 bytes (at capability id 0x${c.id.toString(16)})`,
      );
    cfg.write32(off, (c.id & 0xffff) | (((c.version ?? 1) & 0xf) << 16) | ((next & 0xfff) << 20));
    c.init(cfg, off);
    off = next;
  }
  cfg.invalidateCapabilityCache();
  return cfg;
}
