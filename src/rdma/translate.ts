/**
 * The data-plane hook (rdma-data-direct.md §5.3, §9.1, §9.4): what a DMA through an MR key would
 * do. The DMA engine asks an IB device to translate `(key, address, length, access)` and gets either
 * the PCI function that issues the memory requests, the address(es) that function puts on the wire
 * (bus addresses or IOVAs of its own IOMMU domain) and the TPH to attach, or the work-completion
 * error the requester would see. Translating performs what the NIC would do first: an ODP fault
 * (re-map after an exporter's invalidate) for dynamic dma-buf MRs.
 */
import type { ErrnoName } from "../core/errno.js";
import type { PciDev } from "../pci/device.js";
import { IBV_WC, type IbvWcStatusName } from "./uapi.js";

export type RdmaAccessKind = "local-read" | "local-write" | "remote-read" | "remote-write" | "remote-atomic";

export interface TranslateRequest {
  /** lkey (local access) or rkey (remote access). */
  key: number;
  /** Address in the MR's IOVA space. */
  addr: bigint;
  length: bigint;
  access: RdmaAccessKind;
}

export interface DmaSegment {
  dmaAddress: bigint;
  len: bigint;
}

export interface TranslateOk {
  ok: true;
  /** The function whose Requester ID the memory requests carry. */
  issuer: PciDev;
  /** Where the requests go, in order (merged when contiguous). */
  segments: DmaSegment[];
  /** `segments[0].dmaAddress`. */
  dmaAddress: bigint;
  /** BUS_ADDR: PCI bus addresses; THRU_HOST_BRIDGE: IOVAs of the issuer's IOMMU domain (or dma-direct). */
  mapType: "BUS_ADDR" | "THRU_HOST_BRIDGE";
  mode: "bus" | "iova" | "per-range";
  /** What to tell the DMA engine about `segments` (its `DmaOptions.addressKind`). */
  addressKind: "bus" | "iova";
  /** The exporting device, when the exporter says which one it is. */
  target?: PciDev;
  /** Steering tag (the tag value, not the table index) and processing hint to put on the requests. */
  tph?: { st: number; ph: number; stIndex: number; extended: boolean; assumption?: "dataDirectTph=carry" };
  relaxedOrdering: boolean;
  dataDirect: boolean;
  /** An ODP fault re-mapped the buffer before this access. */
  faulted: boolean;
  projected?: true;
}

export type TranslateFailReason =
  | "invalid-key"
  | "bounds"
  | "rights"
  | "revoked"
  | "disabled"
  | "fault"
  | "unmapped";

export interface TranslateFail {
  ok: false;
  /** `enum ibv_wc_status` the requester sees. */
  status: number;
  statusName: IbvWcStatusName;
  reason: TranslateFailReason;
  /** The kernel error behind a failed fault. */
  errno?: ErrnoName;
  detail: string;
  projected?: true;
}

export type TranslateResult = TranslateOk | TranslateFail;

export function isRemote(a: RdmaAccessKind): boolean {
  return a.startsWith("remote");
}

/** The error completion for an access of kind `a` (§9.1: remote → REM_ACCESS_ERR, local → LOC_PROT_ERR). */
export function accessFail(
  a: RdmaAccessKind,
  reason: TranslateFailReason,
  detail: string,
  extra: { errno?: ErrnoName; projected?: boolean } = {},
): TranslateFail {
  const statusName: IbvWcStatusName = isRemote(a) ? "REM_ACCESS_ERR" : "LOC_PROT_ERR";
  const f: TranslateFail = { ok: false, status: IBV_WC[statusName], statusName, reason, detail };
  if (extra.errno) f.errno = extra.errno;
  if (extra.projected) f.projected = true;
  return f;
}
