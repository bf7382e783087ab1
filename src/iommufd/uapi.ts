/**
 * The iommufd uAPI as exact binary layouts (include/uapi/linux/iommufd.h and the selftest's
 * iommufd_test.h; kernel-semantics §10.2, K-4). Every command is `_IO(';', nr)` with the size of the
 * struct carried in its first u32 (`size`), which is how iommufd extends structs: the kernel knows
 * a `size` (its struct) and a `minSize` (the end of the last mandatory field).
 */

export const IOMMUFD_TYPE = 0x3b; // ';'
export const IOMMUFD_CMD_BASE = 0x80;
const io = (nr: number) => (IOMMUFD_TYPE << 8) | nr;

export const IOMMUFD_CMD = {
  IOMMU_DESTROY: io(0x80),
  IOMMU_IOAS_ALLOC: io(0x81),
  IOMMU_IOAS_ALLOW_IOVAS: io(0x82),
  IOMMU_IOAS_COPY: io(0x83),
  IOMMU_IOAS_IOVA_RANGES: io(0x84),
  IOMMU_IOAS_MAP: io(0x85),
  IOMMU_IOAS_UNMAP: io(0x86),
  IOMMU_OPTION: io(0x87),
  IOMMU_VFIO_IOAS: io(0x88),
  IOMMU_HWPT_ALLOC: io(0x89),
  IOMMU_GET_HW_INFO: io(0x8a),
  IOMMU_HWPT_SET_DIRTY_TRACKING: io(0x8b),
  IOMMU_HWPT_GET_DIRTY_BITMAP: io(0x8c),
  IOMMU_HWPT_INVALIDATE: io(0x8d),
  IOMMU_FAULT_QUEUE_ALLOC: io(0x8e),
  IOMMU_IOAS_MAP_FILE: io(0x8f),
  IOMMU_VIOMMU_ALLOC: io(0x90),
  IOMMU_VDEVICE_ALLOC: io(0x91),
  IOMMU_IOAS_CHANGE_PROCESS: io(0x92),
  IOMMU_VEVENTQ_ALLOC: io(0x93),
  IOMMU_HW_QUEUE_ALLOC: io(0x94),
  /** Selftest (CONFIG_IOMMUFD_TEST): `IOMMUFD_CMD_BASE + 32`. */
  IOMMU_TEST_CMD: io(0xa0),
} as const;

export type IommufdCmdName = keyof typeof IOMMUFD_CMD;

/** `IOMMU_IOAS_MAP*` / `IOMMU_IOAS_COPY` flags. */
export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;
export const IOMMU_IOAS_MAP_FLAGS =
  IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;

/** `enum iommufd_vfio_ioas_op`. */
export const IOMMU_VFIO_IOAS_GET = 0;
export const IOMMU_VFIO_IOAS_SET = 1;
export const IOMMU_VFIO_IOAS_CLEAR = 2;

/** `enum iommu_hwpt_data_type`: only the plain (non-nested) kind is modelled. */
export const IOMMU_HWPT_DATA_NONE = 0;

/** Selftest operations (`enum` of iommufd_test.h, 6.19 with the DMABUF series). */
export const IOMMU_TEST_OP = {
  ADD_RESERVED: 1,
  MOCK_DOMAIN: 2,
  MD_CHECK_MAP: 3,
  MD_CHECK_REFS: 4,
  CREATE_ACCESS: 5,
  DESTROY_ACCESS_PAGES: 6,
  ACCESS_PAGES: 7,
  ACCESS_RW: 8,
  SET_TEMP_MEMORY_LIMIT: 9,
  MOCK_DOMAIN_REPLACE: 10,
  ACCESS_REPLACE_IOAS: 11,
  MOCK_DOMAIN_FLAGS: 12,
  DIRTY: 13,
  MD_CHECK_IOTLB: 14,
  TRIGGER_IOPF: 15,
  DEV_CHECK_CACHE: 16,
  TRIGGER_VEVENT: 17,
  PASID_ATTACH: 18,
  PASID_REPLACE: 19,
  PASID_DETACH: 20,
  PASID_CHECK_HWPT: 21,
  DMABUF_GET: 22,
  DMABUF_REVOKE: 23,
} as const;

/** The mock IOMMU's aperture (MOCK_APERTURE_START / _LAST). */
export const MOCK_APERTURE_START = 1n << 24n;
export const MOCK_APERTURE_LAST = (1n << 31n) - 1n;

/* ---------- generic struct codec ---------- */

export type FieldType = "u16" | "u32" | "s32" | "u64";
export type FieldDefs = Record<string, readonly [offset: number, type: FieldType]>;
export type StructValues<F extends FieldDefs> = {
  [K in keyof F]: F[K][1] extends "u64" ? bigint : number;
};

export interface StructDef<F extends FieldDefs = FieldDefs> {
  name: string;
  /** sizeof(struct) as this kernel knows it. */
  size: number;
  /** offsetofend of the last mandatory field (`IOCTL_OP(…, last)`). */
  minSize: number;
  fields: F;
}

function def<const F extends FieldDefs>(
  name: string,
  size: number,
  minSize: number,
  fields: F,
): StructDef<F> {
  return { name, size, minSize, fields };
}

const WIDTH: Record<FieldType, number> = { u16: 2, u32: 4, s32: 4, u64: 8 };

export function fieldWidth(t: FieldType): number {
  return WIDTH[t];
}

/** Writes `values` into `view` (missing fields stay as they are). */
export function writeFields<F extends FieldDefs>(
  d: StructDef<F>,
  view: DataView,
  values: Partial<StructValues<F>>,
): void {
  for (const [name, [off, t]] of Object.entries(d.fields)) {
    const v = (values as Record<string, number | bigint | undefined>)[name];
    if (v === undefined || off + WIDTH[t] > view.byteLength) continue;
    if (t === "u64") view.setBigUint64(off, BigInt.asUintN(64, BigInt(v)), true);
    else if (t === "u16") view.setUint16(off, Number(v) & 0xffff, true);
    else if (t === "s32") view.setInt32(off, Number(v) | 0, true);
    else view.setUint32(off, Number(v) >>> 0, true);
  }
}

/** Reads every field that lies inside `view`. */
export function readFields<F extends FieldDefs>(d: StructDef<F>, view: DataView): StructValues<F> {
  const out: Record<string, number | bigint> = {};
  for (const [name, [off, t]] of Object.entries(d.fields)) {
    if (off + WIDTH[t] > view.byteLength) {
      out[name] = t === "u64" ? 0n : 0;
      continue;
    }
    out[name] =
      t === "u64"
        ? view.getBigUint64(off, true)
        : t === "u16"
          ? view.getUint16(off, true)
          : t === "s32"
            ? view.getInt32(off, true)
            : view.getUint32(off, true);
  }
  return out as StructValues<F>;
}

/** The bytes of `d` with `size` defaulting to `sizeof` (override `size`/`length` for malformed requests). */
export function encodeStruct<F extends FieldDefs>(
  d: StructDef<F>,
  values: Partial<StructValues<F>>,
  o: { length?: number; size?: number } = {},
): Uint8Array {
  const len = o.length ?? d.size;
  const b = new Uint8Array(len);
  const v = new DataView(b.buffer);
  writeFields(d, v, values);
  if (len >= 4) v.setUint32(0, (o.size ?? len) >>> 0, true);
  return b;
}

export function decodeStruct<F extends FieldDefs>(d: StructDef<F>, bytes: Uint8Array): StructValues<F> {
  return readFields(d, new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}

/* ---------- the structs ---------- */

export const IOMMU_DESTROY_S = def("iommu_destroy", 8, 8, { size: [0, "u32"], id: [4, "u32"] });

export const IOMMU_IOAS_ALLOC_S = def("iommu_ioas_alloc", 12, 12, {
  size: [0, "u32"],
  flags: [4, "u32"],
  out_ioas_id: [8, "u32"],
});

export const IOMMU_IOAS_COPY_S = def("iommu_ioas_copy", 40, 40, {
  size: [0, "u32"],
  flags: [4, "u32"],
  dst_ioas_id: [8, "u32"],
  src_ioas_id: [12, "u32"],
  length: [16, "u64"],
  dst_iova: [24, "u64"],
  src_iova: [32, "u64"],
});

export const IOMMU_IOAS_MAP_S = def("iommu_ioas_map", 40, 40, {
  size: [0, "u32"],
  flags: [4, "u32"],
  ioas_id: [8, "u32"],
  __reserved: [12, "u32"],
  user_va: [16, "u64"],
  length: [24, "u64"],
  iova: [32, "u64"],
});

export const IOMMU_IOAS_UNMAP_S = def("iommu_ioas_unmap", 24, 24, {
  size: [0, "u32"],
  ioas_id: [4, "u32"],
  iova: [8, "u64"],
  length: [16, "u64"],
});

export const IOMMU_VFIO_IOAS_S = def("iommu_vfio_ioas", 12, 12, {
  size: [0, "u32"],
  ioas_id: [4, "u32"],
  op: [8, "u16"],
  __reserved: [10, "u16"],
});

export const IOMMU_HWPT_ALLOC_S = def("iommu_hwpt_alloc", 48, 24, {
  size: [0, "u32"],
  flags: [4, "u32"],
  dev_id: [8, "u32"],
  pt_id: [12, "u32"],
  out_hwpt_id: [16, "u32"],
  __reserved: [20, "u32"],
  data_type: [24, "u32"],
  data_len: [28, "u32"],
  data_uptr: [32, "u64"],
  fault_id: [40, "u32"],
  __reserved2: [44, "u32"],
});

/** K-4: 40 bytes; size 0, flags 4, ioas_id 8, fd 12, start 16, length 24, iova 32. */
export const IOMMU_IOAS_MAP_FILE_S = def("iommu_ioas_map_file", 40, 40, {
  size: [0, "u32"],
  flags: [4, "u32"],
  ioas_id: [8, "u32"],
  fd: [12, "s32"],
  start: [16, "u64"],
  length: [24, "u64"],
  iova: [32, "u64"],
});

/**
 * `struct iommu_test_cmd`: header 16 bytes, a union of 48 bytes (its largest member, `dirty`, is a
 * u32 and five aligned u64), then `last` at 64; sizeof 72, minimum 68. Only the union members the
 * model uses are listed.
 */
export const IOMMU_TEST_CMD_S = def("iommu_test_cmd", 72, 68, {
  size: [0, "u32"],
  op: [4, "u32"],
  id: [8, "u32"],
  __reserved: [12, "u32"],
  // add_reserved
  add_reserved_start: [16, "u64"],
  add_reserved_length: [24, "u64"],
  // mock_domain
  mock_out_stdev_id: [16, "u32"],
  mock_out_hwpt_id: [20, "u32"],
  mock_out_idev_id: [24, "u32"],
  // mock_domain_replace
  replace_pt_id: [16, "u32"],
  // dmabuf_get
  dmabuf_get_length: [16, "u32"],
  dmabuf_get_open_flags: [20, "u32"],
  // dmabuf_revoke
  dmabuf_revoke_fd: [16, "s32"],
  dmabuf_revoke_revoked: [20, "u32"],
  last: [64, "u32"],
});

/** The struct each modelled command copies in (by command number). */
export const IOMMUFD_STRUCTS: Record<number, StructDef> = {
  [IOMMUFD_CMD.IOMMU_DESTROY]: IOMMU_DESTROY_S,
  [IOMMUFD_CMD.IOMMU_IOAS_ALLOC]: IOMMU_IOAS_ALLOC_S,
  [IOMMUFD_CMD.IOMMU_IOAS_COPY]: IOMMU_IOAS_COPY_S,
  [IOMMUFD_CMD.IOMMU_IOAS_MAP]: IOMMU_IOAS_MAP_S,
  [IOMMUFD_CMD.IOMMU_IOAS_UNMAP]: IOMMU_IOAS_UNMAP_S,
  [IOMMUFD_CMD.IOMMU_VFIO_IOAS]: IOMMU_VFIO_IOAS_S,
  [IOMMUFD_CMD.IOMMU_HWPT_ALLOC]: IOMMU_HWPT_ALLOC_S,
  [IOMMUFD_CMD.IOMMU_IOAS_MAP_FILE]: IOMMU_IOAS_MAP_FILE_S,
  [IOMMUFD_CMD.IOMMU_TEST_CMD]: IOMMU_TEST_CMD_S,
};

/* ---------- convenience encoders ---------- */

export interface MapFileArgs {
  flags?: number;
  ioasId: number;
  fd: number;
  start: bigint;
  length: bigint;
  iova?: bigint;
}

/** `struct iommu_ioas_map_file` (default flags READABLE | WRITEABLE). */
export function encodeMapFile(a: MapFileArgs, o: { length?: number; size?: number } = {}): Uint8Array {
  return encodeStruct(
    IOMMU_IOAS_MAP_FILE_S,
    {
      flags: a.flags ?? IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
      ioas_id: a.ioasId,
      fd: a.fd,
      start: a.start,
      length: a.length,
      iova: a.iova ?? 0n,
    },
    o,
  );
}

export function decodeMapFile(bytes: Uint8Array) {
  return decodeStruct(IOMMU_IOAS_MAP_FILE_S, bytes);
}
