/**
 * RDMA uAPI identifiers (rdma-data-direct.md §6) and the exact binary framing of the uverbs ioctl
 * path: `struct ib_uverbs_ioctl_hdr` (24 bytes) followed by `num_attrs` × `struct ib_uverbs_attr`
 * (16 bytes), little-endian, as rdma-core builds them and the kernel reads them. Pure codecs
 * (DataView); the kernel side that interprets them is `uverbs.ts`, the library side `verbs.ts`.
 */
import type { StructView } from "../core/file.js";

/** `RDMA_VERBS_IOCTL` = `_IOWR(0x1b, 1, struct ib_uverbs_ioctl_hdr)`. */
export const RDMA_VERBS_IOCTL = 0xc0181b01;
export const IB_UVERBS_IOCTL_HDR_SIZE = 24;
export const IB_UVERBS_ATTR_SIZE = 16;
export const UVERBS_ATTR_F_MANDATORY = 1 << 0;
export const UVERBS_ATTR_F_VALID_OUTPUT = 1 << 1;
export const UVERBS_ID_NS_SHIFT = 12;
/** First driver-namespace id. */
export const UVERBS_ID_DRIVER_NS = 1 << UVERBS_ID_NS_SHIFT;

export const UVERBS_OBJECT = { DEVICE: 0, PD: 1, MR: 7, DMAH: 17 } as const;

export const UVERBS_METHOD_MR = {
  DM_MR_REG: 0,
  MR_DESTROY: 1,
  ADVISE_MR: 2,
  QUERY_MR: 3,
  REG_DMABUF_MR: 4,
  REG_MR: 5,
} as const;

export const UVERBS_ATTR_REG_DMABUF_MR = {
  HANDLE: 0,
  PD_HANDLE: 1,
  OFFSET: 2,
  LENGTH: 3,
  IOVA: 4,
  FD: 5,
  ACCESS_FLAGS: 6,
  RESP_LKEY: 7,
  RESP_RKEY: 8,
} as const;

export const UVERBS_ATTR_DESTROY_MR_HANDLE = 0;

/** mlx5 driver attribute on REG_DMABUF_MR (flags-in). */
export const MLX5_IB_ATTR_REG_DMABUF_MR_ACCESS_FLAGS = 0x1000;
export const MLX5_IB_UAPI_REG_DMABUF_ACCESS_DATA_DIRECT = 1 << 0;
/** rdma-core's name for the same bit. */
export const MLX5DV_REG_DMABUF_ACCESS_DATA_DIRECT = 1 << 0;
export const MLX5_IB_METHOD_QUERY_PORT = 0x1000;
export const MLX5_IB_METHOD_GET_DATA_DIRECT_SYSFS_PATH = 0x1001;
export const MLX5_IB_ATTR_GET_DATA_DIRECT_SYSFS_PATH = 0x1000;

/** `enum rdma_driver_id` (the header's `driver_id`). */
export const RDMA_DRIVER = { UNKNOWN: 0, MLX5: 1, RXE: 14 } as const;

/** `enum ib_access_flags` (§6.3). */
export const IB_ACCESS = {
  LOCAL_WRITE: 1,
  REMOTE_WRITE: 2,
  REMOTE_READ: 4,
  REMOTE_ATOMIC: 8,
  MW_BIND: 16,
  ZERO_BASED: 32,
  ON_DEMAND: 64,
  HUGETLB: 128,
  FLUSH_GLOBAL: 1 << 8,
  FLUSH_PERSISTENT: 1 << 9,
  RELAXED_ORDERING: 1 << 20,
} as const;
/** libibverbs `IBV_ACCESS_OPTIONAL_RANGE`. */
export const IBV_ACCESS_OPTIONAL_RANGE = 0x3ff00000;

/** Bits REG_DMABUF_MR accepts in ACCESS_FLAGS (§8.1 step 5). */
export const REG_DMABUF_MR_ALLOWED_ACCESS =
  IB_ACCESS.LOCAL_WRITE |
  IB_ACCESS.REMOTE_WRITE |
  IB_ACCESS.REMOTE_READ |
  IB_ACCESS.REMOTE_ATOMIC |
  IB_ACCESS.RELAXED_ORDERING;

/** `enum ibv_wc_status` (the values a requester sees). */
export const IBV_WC = {
  SUCCESS: 0,
  LOC_LEN_ERR: 1,
  LOC_QP_OP_ERR: 2,
  LOC_EEC_OP_ERR: 3,
  LOC_PROT_ERR: 4,
  WR_FLUSH_ERR: 5,
  MW_BIND_ERR: 6,
  BAD_RESP_ERR: 7,
  LOC_ACCESS_ERR: 8,
  REM_INV_REQ_ERR: 9,
  REM_ACCESS_ERR: 10,
  REM_OP_ERR: 11,
} as const;
export type IbvWcStatusName = keyof typeof IBV_WC;

/** `IBV_REREG_MR_ERR_INPUT`. */
export const IBV_REREG_MR_ERR_INPUT = -1;

/** `mlx5_ifc.h` mkey access modes (§5.3). */
export const MLX5_MKC_ACCESS_MODE = {
  PA: 0,
  MTT: 1,
  KLMS: 2,
  KSM: 3,
  SW_ICM: 4,
  MEMIC: 5,
  CROSSING: 6,
} as const;

/** `MLX5_CMD_OPCODE_QUERY_VUID`. */
export const MLX5_CMD_OP_QUERY_VUID = 0xb22;
/** `MLX5_ST_SZ_BYTES(array1024_auto)`: one VUID entry. */
export const MLX5_VUID_LEN = 128;

/* ---------------------------------------------------------------------------------------------- */
/* framing                                                                                         */

/** `struct ib_uverbs_ioctl_hdr`. */
export interface UverbsIoctlHdr {
  length: number;
  objectId: number;
  methodId: number;
  numAttrs: number;
  reserved1: bigint;
  driverId: number;
  reserved2: number;
}

/** `struct ib_uverbs_attr`. `attrData` is the 16-bit union (`enum_data` or `reserved`). */
export interface UverbsAttr {
  attrId: number;
  len: number;
  flags: number;
  attrData: number;
  /** Inline data (len ≤ 8, little-endian in the u64) or a user pointer. */
  data: bigint;
}

export interface UverbsIoctl {
  hdr: UverbsIoctlHdr;
  attrs: UverbsAttr[];
}

/** What a caller gives to {@link encodeUverbsIoctl}; the header's length/num_attrs default to the truth. */
export interface UverbsIoctlInput {
  objectId: number;
  methodId: number;
  driverId: number;
  attrs: UverbsAttr[];
  length?: number;
  numAttrs?: number;
  reserved1?: bigint;
  reserved2?: number;
}

export function encodeUverbsIoctl(c: UverbsIoctlInput): Uint8Array {
  const n = c.attrs.length;
  const out = new Uint8Array(IB_UVERBS_IOCTL_HDR_SIZE + IB_UVERBS_ATTR_SIZE * n);
  const v = new DataView(out.buffer);
  v.setUint16(0, c.length ?? IB_UVERBS_IOCTL_HDR_SIZE + IB_UVERBS_ATTR_SIZE * n, true);
  v.setUint16(2, c.objectId, true);
  v.setUint16(4, c.methodId, true);
  v.setUint16(6, c.numAttrs ?? n, true);
  v.setBigUint64(8, BigInt.asUintN(64, c.reserved1 ?? 0n), true);
  v.setUint32(16, c.driverId >>> 0, true);
  v.setUint32(20, (c.reserved2 ?? 0) >>> 0, true);
  for (const [i, a] of c.attrs.entries())
    encodeAttrAt(v, IB_UVERBS_IOCTL_HDR_SIZE + IB_UVERBS_ATTR_SIZE * i, a);
  return out;
}

export function encodeAttrAt(v: DataView, o: number, a: UverbsAttr): void {
  v.setUint16(o, a.attrId, true);
  v.setUint16(o + 2, a.len, true);
  v.setUint16(o + 4, a.flags, true);
  v.setUint16(o + 6, a.attrData, true);
  v.setBigUint64(o + 8, BigInt.asUintN(64, a.data), true);
}

export function decodeUverbsHdr(v: StructView): UverbsIoctlHdr {
  return {
    length: v.getUint16(0, true),
    objectId: v.getUint16(2, true),
    methodId: v.getUint16(4, true),
    numAttrs: v.getUint16(6, true),
    reserved1: v.getBigUint64(8, true),
    driverId: v.getUint32(16, true),
    reserved2: v.getUint32(20, true),
  };
}

export function decodeAttrAt(v: StructView, o: number): UverbsAttr {
  return {
    attrId: v.getUint16(o, true),
    len: v.getUint16(o + 2, true),
    flags: v.getUint16(o + 4, true),
    attrData: v.getUint16(o + 6, true),
    data: v.getBigUint64(o + 8, true),
  };
}

/** Decodes a whole call (header and the attributes `num_attrs` announces). */
export function decodeUverbsIoctl(bytes: Uint8Array): UverbsIoctl {
  if (bytes.length < IB_UVERBS_IOCTL_HDR_SIZE) throw new RangeError("uverbs ioctl: shorter than the header");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hdr = decodeUverbsHdr(v);
  const attrs: UverbsAttr[] = [];
  for (let i = 0; i < hdr.numAttrs; i++) {
    const o = IB_UVERBS_IOCTL_HDR_SIZE + IB_UVERBS_ATTR_SIZE * i;
    if (o + IB_UVERBS_ATTR_SIZE > bytes.length)
      throw new RangeError(`uverbs ioctl: attribute ${i} truncated`);
    attrs.push(decodeAttrAt(v, o));
  }
  return { hdr, attrs };
}

/* rdma-core's attribute fillers (libibverbs cmd_ioctl.h): every attribute it fills is MANDATORY. */

const M = UVERBS_ATTR_F_MANDATORY;
/** `fill_attr_in_uint64`. */
export const attrInU64 = (attrId: number, v: bigint): UverbsAttr => ({
  attrId,
  len: 8,
  flags: M,
  attrData: 0,
  data: BigInt.asUintN(64, v),
});
/** `fill_attr_in_uint32` (also used for an `int` fd: the 32-bit pattern). */
export const attrInU32 = (attrId: number, v: number): UverbsAttr => ({
  attrId,
  len: 4,
  flags: M,
  attrData: 0,
  data: BigInt(v >>> 0),
});
/** `fill_attr_in_obj`: an existing object's handle. */
export const attrInObj = (attrId: number, handle: number): UverbsAttr => ({
  attrId,
  len: 0,
  flags: M,
  attrData: 0,
  data: BigInt(handle >>> 0),
});
/** `fill_attr_out_obj`: the kernel writes the new handle into `data`. */
export const attrOutObj = (attrId: number): UverbsAttr => ({
  attrId,
  len: 0,
  flags: M,
  attrData: 0,
  data: 0n,
});
/** `fill_attr_out`: a user buffer of `len` bytes at `ptr`. */
export const attrOut = (attrId: number, ptr: bigint, len: number): UverbsAttr => ({
  attrId,
  len,
  flags: M,
  attrData: 0,
  data: ptr,
});

/* ---------------------------------------------------------------------------------------------- */
/* the REG_DMABUF_MR call                                                                          */

/** The arguments of one REG_DMABUF_MR call as rdma-core passes them. */
export interface RegDmabufMrCall {
  driverId: number;
  pdHandle: number;
  offset: bigint;
  length: bigint;
  iova: bigint;
  fd: number;
  access: number;
  /** User pointers of the two 4-byte outputs. */
  lkeyPtr: bigint;
  rkeyPtr: bigint;
  /** `mlx5dv_reg_dmabuf_mr`'s `mlx5_access` (attribute 0x1000); absent for `ibv_reg_dmabuf_mr`. */
  mlx5Access?: number;
}

const A = UVERBS_ATTR_REG_DMABUF_MR;

/** The attributes in the order of DD-48: HANDLE … RESP_RKEY, then the driver's 0x1000. */
export function regDmabufMrAttrs(c: RegDmabufMrCall): UverbsAttr[] {
  const attrs = [
    attrOutObj(A.HANDLE),
    attrInObj(A.PD_HANDLE, c.pdHandle),
    attrInU64(A.OFFSET, c.offset),
    attrInU64(A.LENGTH, c.length),
    attrInU64(A.IOVA, c.iova),
    attrInU32(A.FD, c.fd),
    attrInU32(A.ACCESS_FLAGS, c.access),
    attrOut(A.RESP_LKEY, c.lkeyPtr, 4),
    attrOut(A.RESP_RKEY, c.rkeyPtr, 4),
  ];
  if (c.mlx5Access !== undefined)
    attrs.push(attrInU32(MLX5_IB_ATTR_REG_DMABUF_MR_ACCESS_FLAGS, c.mlx5Access));
  return attrs;
}

export function encodeRegDmabufMr(c: RegDmabufMrCall): Uint8Array {
  return encodeUverbsIoctl({
    objectId: UVERBS_OBJECT.MR,
    methodId: UVERBS_METHOD_MR.REG_DMABUF_MR,
    driverId: c.driverId,
    attrs: regDmabufMrAttrs(c),
  });
}

/** Reads a REG_DMABUF_MR call back from its bytes; RangeError when they are not one. */
export function decodeRegDmabufMr(bytes: Uint8Array): RegDmabufMrCall {
  const { hdr, attrs } = decodeUverbsIoctl(bytes);
  if (hdr.objectId !== UVERBS_OBJECT.MR || hdr.methodId !== UVERBS_METHOD_MR.REG_DMABUF_MR)
    throw new RangeError(`not REG_DMABUF_MR (object ${hdr.objectId}, method ${hdr.methodId})`);
  const get = (id: number) => attrs.find((a) => a.attrId === id);
  const need = (id: number) => {
    const a = get(id);
    if (!a) throw new RangeError(`REG_DMABUF_MR: attribute ${id} missing`);
    return a;
  };
  const mlx5 = get(MLX5_IB_ATTR_REG_DMABUF_MR_ACCESS_FLAGS);
  const call: RegDmabufMrCall = {
    driverId: hdr.driverId,
    pdHandle: Number(need(A.PD_HANDLE).data),
    offset: need(A.OFFSET).data,
    length: need(A.LENGTH).data,
    iova: need(A.IOVA).data,
    fd: Number(BigInt.asIntN(32, need(A.FD).data)),
    access: Number(get(A.ACCESS_FLAGS)?.data ?? 0n),
    lkeyPtr: need(A.RESP_LKEY).data,
    rkeyPtr: need(A.RESP_RKEY).data,
  };
  if (mlx5) call.mlx5Access = Number(mlx5.data);
  return call;
}
