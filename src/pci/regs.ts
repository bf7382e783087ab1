/** Config-space register offsets and bits used by the model (kernel-semantics §1.2, PCIe base spec). */

export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_INTX_DISABLE = 0x400;
export const PCI_STATUS = 0x06;
export const PCI_STATUS_CAP_LIST = 0x10;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_HEADER_TYPE_MFD = 0x80;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_BASE_ADDRESS_SPACE_IO = 0x1;
export const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x4;
export const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x8;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_CAPABILITY_LIST = 0x34;
/* type 1 header */
export const PCI_PRIMARY_BUS = 0x18;
export const PCI_SECONDARY_BUS = 0x19;
export const PCI_SUBORDINATE_BUS = 0x1a;
export const PCI_BRIDGE_CONTROL = 0x3e;
export const PCI_BRIDGE_CTL_BUS_RESET = 0x40;

/* capability ids */
export const PCI_CAP_ID_PM = 0x01;
export const PCI_CAP_ID_MSI = 0x05;
export const PCI_CAP_ID_VNDR = 0x09;
export const PCI_CAP_ID_EXP = 0x10;
export const PCI_CAP_ID_MSIX = 0x11;
export const PCI_CAP_ID_AF = 0x13;

/* extended capability ids */
export const PCI_EXT_CAP_ID_ERR = 0x0001;
export const PCI_EXT_CAP_ID_DSN = 0x0003;
export const PCI_EXT_CAP_ID_ACS = 0x000d;
export const PCI_EXT_CAP_ID_ARI = 0x000e;
export const PCI_EXT_CAP_ID_ATS = 0x000f;
export const PCI_EXT_CAP_ID_SRIOV = 0x0010;
export const PCI_EXT_CAP_ID_PRI = 0x0013;
export const PCI_EXT_CAP_ID_TPH = 0x0017;
export const PCI_EXT_CAP_ID_PASID = 0x001b;

/* PM */
export const PCI_PM_CTRL = 4;
export const PCI_PM_CTRL_STATE_MASK = 0x3;
export const PCI_PM_CTRL_NO_SOFT_RESET = 0x8;

/* PCIe capability */
export const PCI_EXP_FLAGS = 2;
export const PCI_EXP_DEVCAP = 4;
export const PCI_EXP_DEVCAP_PAYLOAD = 0x7;
export const PCI_EXP_DEVCAP_EXT_TAG = 0x20;
export const PCI_EXP_DEVCAP_FLR = 0x1000_0000;
export const PCI_EXP_DEVCTL = 8;
export const PCI_EXP_DEVCTL_EXT_TAG = 0x100;
export const PCI_EXP_DEVCTL_BCR_FLR = 0x8000;
export const PCI_EXP_LNKCAP = 0x0c;
export const PCI_EXP_LNKCTL = 0x10;
export const PCI_EXP_LNKCTL_RCB = 0x8;
export const PCI_EXP_LNKSTA = 0x12;
export const PCI_EXP_DEVCAP2 = 0x24;
export const PCI_EXP_DEVCAP2_TPH_COMP_MASK = 0x3000;
export const PCI_EXP_DEVCAP2_10BIT_TAG_COMP = 0x10000;
export const PCI_EXP_DEVCAP2_10BIT_TAG_REQ = 0x20000;
/** End-End TLP Prefix Supported (bit 21); Max End-End TLP Prefixes in bits 23:22 (00 = 4). */
export const PCI_EXP_DEVCAP2_EE_PREFIX = 0x200000;
export const PCI_EXP_DEVCTL2 = 0x28;
export const PCI_EXP_LNKCAP2 = 0x2c;
export const PCI_EXP_LNKCTL2 = 0x30;
export const PCI_EXP_LNKSTA2 = 0x32;

/** PCIe device/port type (Flags bits 7:4). */
export const PCI_EXP_TYPE = {
  ENDPOINT: 0x0,
  LEG_END: 0x1,
  ROOT_PORT: 0x4,
  UPSTREAM: 0x5,
  DOWNSTREAM: 0x6,
  PCI_BRIDGE: 0x7, // PCIe-to-PCI/PCI-X bridge
  PCIE_BRIDGE: 0x8, // PCI/PCI-X-to-PCIe bridge
  RC_END: 0x9, // root complex integrated endpoint
  RC_EC: 0xa, // root complex event collector
} as const;

/* AF */
export const PCI_AF_CAP = 3;
export const PCI_AF_CAP_TP = 0x01;
export const PCI_AF_CAP_FLR = 0x02;
export const PCI_AF_CTRL = 4;
export const PCI_AF_CTRL_FLR = 0x01;

/* ACS */
export const PCI_ACS_CAP = 4;
export const PCI_ACS_CTRL = 6;
export const PCI_ACS_EGRESS_CTL_V = 8;
export const PCI_ACS_SV = 0x01;
export const PCI_ACS_TB = 0x02;
export const PCI_ACS_RR = 0x04;
export const PCI_ACS_CR = 0x08;
export const PCI_ACS_UF = 0x10;
export const PCI_ACS_EC = 0x20;
export const PCI_ACS_DT = 0x40;
/** Isolation the IOMMU layer requires (kernel-semantics §11.1, K-7). */
export const REQ_ACS_FLAGS = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;

export const ACS_BIT_NAMES = ["SV", "TB", "RR", "CR", "UF", "EC", "DT"] as const;
export type AcsBitName = (typeof ACS_BIT_NAMES)[number];
export const ACS_BITS: Record<AcsBitName, number> = {
  SV: PCI_ACS_SV,
  TB: PCI_ACS_TB,
  RR: PCI_ACS_RR,
  CR: PCI_ACS_CR,
  UF: PCI_ACS_UF,
  EC: PCI_ACS_EC,
  DT: PCI_ACS_DT,
};

export function acsBitNames(bits: number): AcsBitName[] {
  return ACS_BIT_NAMES.filter((n) => bits & ACS_BITS[n]);
}

/* SR-IOV (offsets inside the extended capability) */
export const PCI_SRIOV_CAP = 0x04;
export const PCI_SRIOV_CTRL = 0x08;
export const PCI_SRIOV_CTRL_VFE = 0x01;
export const PCI_SRIOV_CTRL_ARI = 0x10;
export const PCI_SRIOV_INITIAL_VF = 0x0c;
export const PCI_SRIOV_TOTAL_VF = 0x0e;
export const PCI_SRIOV_NUM_VF = 0x10;
export const PCI_SRIOV_VF_OFFSET = 0x14;
export const PCI_SRIOV_VF_STRIDE = 0x16;
export const PCI_SRIOV_VF_DID = 0x1a;
export const PCI_SRIOV_SUP_PGSIZE = 0x1c;
export const PCI_SRIOV_SYS_PGSIZE = 0x20;
export const PCI_SRIOV_BAR = 0x24;

/* TPH requester (offsets inside the extended capability) */
export const PCI_TPH_CAP = 4;
export const PCI_TPH_CTRL = 8;
export const PCI_TPH_BASE_SIZEOF = 0xc;

/* ARI */
export const PCI_ARI_CAP = 4;

/** Link speed code (LnkCap/LnkSta field) to GT/s. */
export const LINK_SPEED_GTS: Record<number, number> = { 1: 2.5, 2: 5, 3: 8, 4: 16, 5: 32, 6: 64, 7: 128 };
export function speedCodeOf(gts: number): number {
  for (const [code, v] of Object.entries(LINK_SPEED_GTS)) if (v === gts) return Number(code);
  return 0;
}
