/**
 * NVMe controller registers (BAR0) and command constants, NVM Express Base Specification 1.3
 * ("Controller Registers", "Admin Command Set", "NVM Command Set").
 */

export const NVME_REG = {
  CAP: 0x00,
  VS: 0x08,
  INTMS: 0x0c,
  INTMC: 0x10,
  CC: 0x14,
  CSTS: 0x1c,
  NSSR: 0x20,
  AQA: 0x24,
  ASQ: 0x28,
  ACQ: 0x30,
  CMBLOC: 0x38,
  CMBSZ: 0x3c,
} as const;

/** First doorbell; SQ y tail at DOORBELL_BASE + (2y)·(4 << CAP.DSTRD), CQ y head at (2y + 1)·… */
export const NVME_DOORBELL_BASE = 0x1000;

/* CC */
export const NVME_CC_EN = 1 << 0;
export const NVME_CC_CSS_SHIFT = 4;
export const NVME_CC_MPS_SHIFT = 7;
export const NVME_CC_AMS_SHIFT = 11;
export const NVME_CC_SHN_SHIFT = 14;
export const NVME_CC_IOSQES_SHIFT = 16;
export const NVME_CC_IOCQES_SHIFT = 20;

/* CSTS */
export const NVME_CSTS_RDY = 1 << 0;
export const NVME_CSTS_CFS = 1 << 1;
export const NVME_CSTS_SHST_SHIFT = 2;
export const NVME_CSTS_SHST_COMPLETE = 2;
export const NVME_CSTS_NSSRO = 1 << 4;

/* CMBSZ */
export const NVME_CMBSZ_SQS = 1 << 0;
export const NVME_CMBSZ_CQS = 1 << 1;
export const NVME_CMBSZ_LISTS = 1 << 2;
export const NVME_CMBSZ_RDS = 1 << 3;
export const NVME_CMBSZ_WDS = 1 << 4;
export const NVME_CMBSZ_SZU_SHIFT = 8;
export const NVME_CMBSZ_SZ_SHIFT = 12;

/** "NVMe" written to NSSR starts an NVM subsystem reset. */
export const NVME_NSSR_MAGIC = 0x4e564d65;

export const NVME_ADMIN = {
  DELETE_SQ: 0x00,
  CREATE_SQ: 0x01,
  GET_LOG_PAGE: 0x02,
  DELETE_CQ: 0x04,
  CREATE_CQ: 0x05,
  IDENTIFY: 0x06,
  ABORT: 0x08,
  SET_FEATURES: 0x09,
  GET_FEATURES: 0x0a,
} as const;

export const NVME_IO = { FLUSH: 0x00, WRITE: 0x01, READ: 0x02 } as const;

export const NVME_FEAT_NUM_QUEUES = 0x07;

export const ADMIN_NAMES: Readonly<Record<number, string>> = {
  0: "Delete I/O Submission Queue",
  1: "Create I/O Submission Queue",
  2: "Get Log Page",
  4: "Delete I/O Completion Queue",
  5: "Create I/O Completion Queue",
  6: "Identify",
  8: "Abort",
  9: "Set Features",
  10: "Get Features",
};

export const IO_NAMES: Readonly<Record<number, string>> = { 0: "Flush", 1: "Write", 2: "Read" };

/** Status Code Type 0 (generic) and 1 (command specific) values used by the model. */
export const NVME_SC = {
  SUCCESS: { sct: 0, sc: 0x00 },
  INVALID_OPCODE: { sct: 0, sc: 0x01 },
  INVALID_FIELD: { sct: 0, sc: 0x02 },
  DATA_TRANSFER_ERROR: { sct: 0, sc: 0x04 },
  INVALID_NS: { sct: 0, sc: 0x0b },
  INVALID_PRP_OFFSET: { sct: 0, sc: 0x13 },
  LBA_RANGE: { sct: 0, sc: 0x80 },
  CQ_INVALID: { sct: 1, sc: 0x00 },
  INVALID_QID: { sct: 1, sc: 0x01 },
  INVALID_QSIZE: { sct: 1, sc: 0x02 },
  INVALID_QUEUE_DELETION: { sct: 1, sc: 0x0c },
} as const;

export interface NvmeStatus {
  sct: number;
  sc: number;
  dnr?: boolean;
}

const STATUS_NAMES: Readonly<Record<string, string>> = {
  "0/0": "Successful Completion",
  "0/1": "Invalid Command Opcode",
  "0/2": "Invalid Field in Command",
  "0/4": "Data Transfer Error",
  "0/11": "Invalid Namespace or Format",
  "0/19": "PRP Offset Invalid",
  "0/128": "LBA Out of Range",
  "1/0": "Completion Queue Invalid",
  "1/1": "Invalid Queue Identifier",
  "1/2": "Invalid Queue Size",
  "1/12": "Invalid Queue Deletion",
};

export function statusName(s: NvmeStatus): string {
  return STATUS_NAMES[`${s.sct}/${s.sc}`] ?? `SCT ${s.sct} SC 0x${s.sc.toString(16).padStart(2, "0")}`;
}
