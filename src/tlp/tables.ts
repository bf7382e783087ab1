/** Type encodings: NFM Fmt/Type byte (§6.1) and FM Type[7:0] with header base sizes (§7.2). */
import type { TlpKind } from "./types.js";

export interface TlpTypeInfo {
  code: number;
  name: string;
  description: string;
  kind: TlpKind;
  posted: boolean;
  hasData: boolean;
  /** Header (NFM) or header base (FM) size in DW. */
  baseDw: number;
  /** Memory and IO requests: 64-bit address. */
  addr64: boolean;
  /** MRd, MRdLk, MWr, AtomicOps, DMWr carry TPH (§3). */
  tph: boolean;
  /** UIO types exist only in flit mode (§7.2). */
  flitOnly: boolean;
}

function t(
  code: number,
  name: string,
  description: string,
  kind: TlpKind,
  o: { posted?: boolean; tph?: boolean; flitOnly?: boolean; baseDw?: number } = {},
): TlpTypeInfo {
  const hasData = (code & 0x40) !== 0;
  const dw4 = (code & 0x20) !== 0;
  return {
    code,
    name,
    description,
    kind,
    posted: o.posted ?? false,
    hasData,
    baseDw: o.baseDw ?? (dw4 ? 4 : 3),
    addr64: (kind === "mem" || kind === "io") && dw4,
    tph: o.tph ?? false,
    flitOnly: o.flitOnly ?? false,
  };
}

const MSG_ROUTING = [
  "routed to Root Complex",
  "routed by address",
  "routed by ID",
  "broadcast from Root Complex",
  "local, terminate at receiver",
  "gathered and routed to Root Complex",
  "reserved routing 110",
  "reserved routing 111",
];

export function messageRouting(code: number): string {
  return MSG_ROUTING[code & 7];
}

/** Entries shared by both modes (same code in both). */
function common(): TlpTypeInfo[] {
  const out: TlpTypeInfo[] = [
    t(0x01, "MRdLk32", "Memory Read Request-Locked, 32-bit address", "mem", { tph: true }),
    t(0x21, "MRdLk64", "Memory Read Request-Locked, 64-bit address", "mem", { tph: true }),
    t(0x20, "MRd64", "Memory Read Request, 64-bit address", "mem", { tph: true }),
    t(0x40, "MWr32", "Memory Write Request, 32-bit address", "mem", { posted: true, tph: true }),
    t(0x60, "MWr64", "Memory Write Request, 64-bit address", "mem", { posted: true, tph: true }),
    t(0x02, "IORd", "I/O Read Request", "io"),
    t(0x42, "IOWr", "I/O Write Request", "io"),
    t(0x04, "CfgRd0", "Configuration Read Type 0", "cfg"),
    t(0x44, "CfgWr0", "Configuration Write Type 0", "cfg"),
    t(0x05, "CfgRd1", "Configuration Read Type 1", "cfg"),
    t(0x45, "CfgWr1", "Configuration Write Type 1", "cfg"),
    t(0x0a, "Cpl", "Completion without Data", "cpl"),
    t(0x4a, "CplD", "Completion with Data", "cpl"),
    t(0x0b, "CplLk", "Completion for Locked Memory Read without Data", "cpl"),
    t(0x4b, "CplDLk", "Completion for Locked Memory Read with Data", "cpl"),
    t(0x4c, "FetchAdd32", "Fetch and Add AtomicOp Request, 32-bit address", "mem", { tph: true }),
    t(0x6c, "FetchAdd64", "Fetch and Add AtomicOp Request, 64-bit address", "mem", { tph: true }),
    t(0x4d, "Swap32", "Unconditional Swap AtomicOp Request, 32-bit address", "mem", { tph: true }),
    t(0x6d, "Swap64", "Unconditional Swap AtomicOp Request, 64-bit address", "mem", { tph: true }),
    t(0x4e, "CAS32", "Compare and Swap AtomicOp Request, 32-bit address", "mem", { tph: true }),
    t(0x6e, "CAS64", "Compare and Swap AtomicOp Request, 64-bit address", "mem", { tph: true }),
    t(0x5b, "DMWr32", "Deferrable Memory Write Request, 32-bit address", "mem", { tph: true }),
    t(0x7b, "DMWr64", "Deferrable Memory Write Request, 64-bit address", "mem", { tph: true }),
  ];
  for (let r = 0; r < 8; r++) {
    out.push(t(0x30 | r, "Msg", `Message Request, ${MSG_ROUTING[r]}`, "msg", { posted: true }));
    out.push(t(0x70 | r, "MsgD", `Message Request with data, ${MSG_ROUTING[r]}`, "msg", { posted: true }));
  }
  return out;
}

function index(list: TlpTypeInfo[]): (TlpTypeInfo | undefined)[] {
  const a: (TlpTypeInfo | undefined)[] = new Array(256).fill(undefined);
  for (const e of list) a[e.code] = e;
  return a;
}

/** NFM Fmt/Type byte → type; prefixes (0x80–0x9F) are not in this table. */
export const NFM_TYPES: readonly (TlpTypeInfo | undefined)[] = index([
  t(0x00, "MRd32", "Memory Read Request, 32-bit address", "mem", { tph: true }),
  ...common(),
]);

/** FM Type[7:0] → type (§7.2); local prefixes (0x8D–0x8F) are not in this table. */
export const FM_TYPES: readonly (TlpTypeInfo | undefined)[] = index([
  t(0x00, "NOP", "NOP TLP", "nop", { baseDw: 1 }),
  t(0x03, "MRd32", "Memory Read Request, 32-bit address", "mem", { tph: true }),
  ...common(),
  t(0x0c, "UIOWrCpl", "UIO Write Completion", "cpl", { flitOnly: true }),
  t(0x0d, "UIORdCpl", "UIO Read Completion without Data", "cpl", { flitOnly: true }),
  t(0x48, "UIORdCplD", "UIO Read Completion with Data", "cpl", { flitOnly: true }),
  t(0x22, "UIOMRd", "UIO Memory Read Request, 64-bit address", "mem", { flitOnly: true, tph: true }),
  t(0x61, "UIOMWr", "UIO Memory Write Request, 64-bit address", "mem", { flitOnly: true, tph: true }),
]);

export function nfmPrefixName(type: number): string {
  switch (type) {
    case 0x80:
      return "MR-IOV (local)";
    case 0x8e:
      return "VendPrefixL0 (local)";
    case 0x8f:
      return "VendPrefixL1 (local)";
    case 0x90:
      return "ExtTPH";
    case 0x91:
      return "PASID";
    case 0x92:
      return "IDE";
    case 0x9e:
      return "VendPrefixE0";
    case 0x9f:
      return "VendPrefixE1";
    default:
      return type & 0x10 ? "reserved end-to-end prefix" : "reserved local prefix";
  }
}

export function fmPrefixName(type: number): string {
  switch (type) {
    case 0x8d:
      return "Flit Mode Local TLP Prefix";
    case 0x8e:
      return "Vendor local prefix 0";
    case 0x8f:
      return "Vendor local prefix 1";
    default:
      return "reserved";
  }
}

export const isNfmPrefix = (b: number) => (b & 0xe0) === 0x80;
export const isNfmE2ePrefix = (b: number) => (b & 0xf0) === 0x90;
export const isFmPrefix = (b: number) => b >= 0x8d && b <= 0x8f;

/** FM TS[2:0] → trailer DWs (§7.1). */
export const TRAILER_DW = [0, 1, 1, 2, 2, 3, 4, 5] as const;
export const TRAILER_NAME = [
  "none",
  "1 DW ECRC",
  "1 DW reserved",
  "2 DW reserved",
  "2 DW reserved",
  "3 DW (IDE MAC)",
  "4 DW (IDE MAC + PCRC)",
  "5 DW reserved",
];
/** FM OHC[4:3] → OHC-E DWs. */
export const OHC_E_DW = [0, 1, 2, 4] as const;

export const CPL_STATUS = [
  "SC",
  "UR",
  "CRS",
  "reserved 011",
  "CA",
  "reserved 101",
  "reserved 110",
  "reserved 111",
];
export const CPL_STATUS_LONG = [
  "Successful Completion",
  "Unsupported Request",
  "Configuration Request Retry Status (RRS)",
  "reserved",
  "Completer Abort",
  "reserved",
  "reserved",
  "reserved",
];

export const PH_NAME = ["bidirectional", "requester", "target", "target with priority"];
export const HV_NAME = [
  "PH and ST not valid",
  "PH and ST[7:0] valid",
  "reserved, treated as not valid",
  "PH and ST[15:0] valid",
];
export const AT_NAME = ["untranslated", "translation request", "translated", "reserved"];

/** A few well-known message codes (PCIe base spec message tables). */
export const MESSAGE_CODES: Readonly<Record<number, string>> = {
  0: "Unlock",
  1: "Invalidate Request",
  2: "Invalidate Completion",
  4: "Page Request",
  5: "PRG Response",
  16: "LTR",
  18: "OBFF",
  20: "PM_Active_State_Nak",
  24: "PM_PME",
  25: "PME_Turn_Off",
  27: "PME_TO_Ack",
  32: "Assert_INTA",
  33: "Assert_INTB",
  34: "Assert_INTC",
  35: "Assert_INTD",
  36: "Deassert_INTA",
  37: "Deassert_INTB",
  38: "Deassert_INTC",
  39: "Deassert_INTD",
  48: "ERR_COR",
  49: "ERR_NONFATAL",
  51: "ERR_FATAL",
  80: "Set_Slot_Power_Limit",
  82: "PTM Request",
  83: "PTM Response",
  126: "Vendor_Defined Type 0",
  127: "Vendor_Defined Type 1",
};

/** Implied byte enables: every byte of every DW (§6.2, §7.3). */
export function impliedBe(length: number): { first: number; last: number } {
  return { first: 0xf, last: length === 1 ? 0 : 0xf };
}

/** `bb:dd.f` of a 16-bit routing ID. */
export function formatRid(id: number): string {
  const h = (n: number) => n.toString(16).padStart(2, "0");
  return `${h((id >> 8) & 0xff)}:${h((id >> 3) & 0x1f)}.${id & 7}`;
}
