/**
 * The worked example of rdma-data-direct.md §14, booted: NIC PF 0000:41:00.0 (vhca 5, all caps,
 * firmware VUID "MT2514XZ0001"), DMA PF 0000:03:00.0 (15b3:2100, VPD-R VU "MT2514XZ0001") below root
 * port 0000:00:02.0, and a GPU-like function 0000:03:00.1 next to it exporting a pinnable 1 GiB
 * dma-buf as fd 7. (DD-1's sysfs path leaves no room for a switch between the root port and the DMA
 * PF, so "under the same switch" becomes "function 1 of the same device": the upstream bridge is
 * shared, DMA PF ↔ GPU is BUS_ADDR, and the engine keeps that traffic inside the device.) The host bridge is
 * allow-listed, so NIC ↔ GPU is THRU_HOST_BRIDGE (through the NIC's IOMMU domain).
 * CONFIG_DMABUF_MOVE_NOTIFY=y unless a test says otherwise.
 */
import assert from "node:assert/strict";
import { KernelError } from "../../src/core/errors.js";
import { createEventfd, UserBuffer } from "../../src/core/file.js";
import { parseMachineFile } from "../../src/import/machine-file.js";
import type { KernelProfile } from "../../src/machine/profile.js";
import { buildVpd } from "../../src/pci/vpd.js";
import {
  IB_ACCESS,
  type IbvContext,
  type IbvMr,
  type IbvPd,
  ibvAllocPd,
  ibvOpenDevice,
  ibvRegDmabufMr,
  MLX5DV_REG_DMABUF_ACCESS_DATA_DIRECT,
  type Mlx5Caps,
  type Mlx5IbDev,
  type Mlx5Mr,
  type Mlx5NicConfig,
  machineForProfile,
  mlx5dvRegDmabufMr,
  PinnableExporter,
  RdmaCore,
  type RdmaProfile,
  rdmaOf,
  type TranslateResult,
} from "../../src/rdma/index.js";
import { encodeFeatureDmaBuf, VFIO_IOCTL } from "../../src/vfio/index.js";

export const BDF = {
  RP: "0000:00:02.0",
  DMA_PF: "0000:03:00.0",
  GPU: "0000:03:00.1",
  NIC_RP: "0000:00:03.0",
  NIC: "0000:41:00.0",
  NIC2: "0000:42:00.0",
  DMA_PF_B: "0000:44:00.0",
} as const;

export const VUID = "MT2514XZ0001";
export const GiB = 1n << 30n;
export const OFFSET = 0x10000n;
export const LENGTH = 0x200000n;
export const IOVA = 0x7f00_0000_0000n;
export const ACCESS = IB_ACCESS.LOCAL_WRITE | IB_ACCESS.REMOTE_WRITE | IB_ACCESS.REMOTE_READ;
export const DD = MLX5DV_REG_DMABUF_ACCESS_DATA_DIRECT;
/** GPU BAR1 CPU (= bus) address. */
export const GPU_BAR = 0x6000_0000_0000n;

export const MACHINE_YAML = `
name: dd-sec14
description: rdma-data-direct.md §14 worked example
hostBridges:
  - domain: 0
    bus: 0
    functions:
      - { at: "00.0", kind: host-bridge, id: "8086:2020", name: "allow-listed host bridge" }
      - at: "02.0"
        kind: root-port
        id: "8086:2030"
        name: RP
        link: { speed: 32, width: 16 }
        secondaryBus: 3
        below:
          - at: "00.0"
            id: "15b3:2100"
            class: 0x020000
            name: "ConnectX-8 Data Direct"
            link: { speed: 32, width: 16 }
            bars:
              - { index: 0, type: mem64, prefetch: true, size: 2MiB }
            vpd: { idString: "ConnectX-8 SuperNIC", readOnly: { PN: "900-9X81E-00EX", VU: "${VUID}" } }
          - at: "00.1"
            id: "10de:2331"
            class: 0x030200
            name: "GPU-like exporter"
            link: { speed: 32, width: 16 }
            tphCompleter: tph
            bars:
              - { index: 0, type: mem32, size: 16MiB }
              - { index: 1, type: mem64, prefetch: true, size: 2GiB, address: 0x6000_0000_0000 }
      - at: "03.0"
        kind: root-port
        id: "8086:2030"
        name: NIC-RP
        link: { speed: 32, width: 16 }
        tphCompleter: tph
        secondaryBus: 0x41
        below:
          - at: "00.0"
            id: "15b3:1023"
            class: 0x020700
            name: "ConnectX-8 NIC PF"
            link: { speed: 32, width: 16 }
            tph: { modes: [no-st, device-specific], stTable: cap, stTableSize: 64 }
            bars:
              - { index: 0, type: mem64, prefetch: true, size: 64MiB }
      - at: "04.0"
        kind: root-port
        id: "8086:2030"
        secondaryBus: 0x42
        below:
          - at: "00.0"
            id: "15b3:1023"
            class: 0x020700
            name: "second NIC PF"
            bars:
              - { index: 0, type: mem64, prefetch: true, size: 64MiB }
      - at: "05.0"
        kind: root-port
        id: "8086:2030"
        secondaryBus: 0x44
        below:
          - at: "00.0"
            id: "15b3:2100"
            class: 0x020000
            name: "second DMA PF"
            bars:
              - { index: 0, type: mem64, prefetch: true, size: 2MiB }
            vpd: { readOnly: { VU: "${VUID}" } }
`;

export interface SetupOptions {
  rdma?: Partial<RdmaProfile>;
  kernel?: Partial<KernelProfile>;
  /** What is up before the test starts (default both, PF first). */
  order?: "pf-first" | "ib-first" | "pf-only" | "ib-only" | "none";
  nic?: Partial<Mlx5NicConfig>;
  caps?: Partial<Mlx5Caps>;
  /** The DMA PF's VPD bytes (default from the machine file); null = no VPD capability. */
  vpd?: Uint8Array | null;
  /** Export the pinnable GPU buffer (default true). */
  exporter?: boolean;
  exporterTph?: { st?: number; stExt?: number; ph: number };
  /** Identity device of the host bridge (default 8086:2020, on the P2PDMA allow-list). */
  hostBridgeId?: string;
}

export function nicCfg(o: SetupOptions = {}): Mlx5NicConfig {
  return { vhcaId: 5, firmwareVuid: VUID, ...o.nic, caps: { ...o.caps, ...o.nic?.caps } };
}

export function setup(o: SetupOptions = {}) {
  const yaml = o.hostBridgeId
    ? MACHINE_YAML.replace('id: "8086:2020"', `id: "${o.hostBridgeId}"`)
    : MACHINE_YAML;
  const { fabric } = parseMachineFile(yaml, "dd-sec14.yaml");
  // CONFIG_DMABUF_MOVE_NOTIFY=y unless a test says otherwise (as the VFIO tests)
  const { machine: m } = machineForProfile(fabric, o.rdma ?? {}, {
    kernel: { moveNotify: true, ...o.kernel },
  });
  const rdma = rdmaOf(m, { profile: o.rdma });
  const dmaPf = m.device(BDF.DMA_PF);
  const gpu = m.device(BDF.GPU);
  const nicPf = m.device(BDF.NIC);
  if (o.vpd !== undefined) dmaPf.vpd = o.vpd;
  // descriptors 0..6 taken (stdio and friends), so the dma-buf is fd 7 as in §14
  while (m.fds.size < 7) createEventfd(m.fds);
  const exporter =
    o.exporter === false
      ? null
      : new PinnableExporter(m, { dev: gpu, bar: 1, size: GiB, name: "gpu0", tph: o.exporterTph });
  const order = o.order ?? "pf-first";
  let ib: Mlx5IbDev | null = null;
  const addIb = () => {
    ib = rdma.addMlx5Device(nicPf, nicCfg(o));
  };
  if (order === "pf-first" || order === "pf-only") rdma.probeDmaPf(dmaPf);
  if (order === "pf-first" || order === "ib-first" || order === "ib-only") addIb();
  if (order === "ib-first") rdma.probeDmaPf(dmaPf);
  const lib = new RdmaCore(rdma);
  let ctx: IbvContext | null = null;
  let pd: IbvPd | null = null;
  const open = () => {
    if (!ib) throw new Error("no IB device");
    ctx = ibvOpenDevice(lib, ib.name);
    pd = ctx ? ibvAllocPd(ctx) : null;
    return { ctx: ctx!, pd: pd! };
  };
  if (ib) open();
  const s = {
    m,
    rdma,
    lib,
    dmaPf,
    gpu,
    nicPf,
    exporter: exporter as PinnableExporter,
    get ib(): Mlx5IbDev {
      if (!ib) throw new Error("no IB device");
      return ib;
    },
    set ib(v: Mlx5IbDev) {
      ib = v;
    },
    get ctx(): IbvContext {
      return ctx!;
    },
    get pd(): IbvPd {
      return pd!;
    },
    addIb,
    open,
    /** `mlx5dv_reg_dmabuf_mr` with §14's arguments, overridable. */
    regDD(p: Partial<RegArgs> = {}): IbvMr | null {
      const a = { ...defaults(s.exporter?.fd ?? 7), ...p };
      return mlx5dvRegDmabufMr(a.pd ?? s.pd, a.offset, a.length, a.iova, a.fd, a.access, a.mlx5Access ?? DD);
    },
    /** `ibv_reg_dmabuf_mr` (no mlx5 attribute). */
    regPlain(p: Partial<RegArgs> = {}): IbvMr | null {
      const a = { ...defaults(s.exporter?.fd ?? 7), ...p };
      return ibvRegDmabufMr(a.pd ?? s.pd, a.offset, a.length, a.iova, a.fd, a.access);
    },
    /** An RDMA WRITE arriving for `rkey` (what the DMA engine would translate). */
    write(mr: { rkey: number }, addr: bigint, len: bigint): TranslateResult {
      return rdma.translate(s.ib, { key: mr.rkey, addr, length: len, access: "remote-write" });
    },
    read(mr: { rkey: number }, addr: bigint, len: bigint): TranslateResult {
      return rdma.translate(s.ib, { key: mr.rkey, addr, length: len, access: "remote-read" });
    },
    /** The kernel's MR behind a library MR. */
    kmr(mr: IbvMr): Mlx5Mr {
      return rdma.fileOf(mr.context.fd).mr(mr.handle) as Mlx5Mr;
    },
    /** A snapshot of everything a failed registration must leave unchanged. */
    snapshot() {
      return {
        attachments: s.exporter?.attachments ?? 0,
        pins: s.exporter?.pinCount ?? 0,
        mappings: s.exporter?.liveMappings ?? 0,
        refs: s.exporter?.buf.file.refs ?? 0,
        mkeys: ib ? [...ib.mkeys.keys()].sort() : [],
        ddList: ib ? ib.dataDirectMrList.length : 0,
        mrs: ib ? ib.mrs.size : 0,
        objects: ctx ? rdma.fileOf(ctx.fd).objects.size : 0,
      };
    },
    /** VFIO export of the GPU's BAR1 (first `len` bytes). Opens the device through vfio-pci. */
    vfioExport(len: bigint = GiB) {
      const vfd = m.vfio.open(BDF.GPU);
      const fd = m.vfio.ioctl(
        vfd,
        VFIO_IOCTL.VFIO_DEVICE_FEATURE,
        new UserBuffer(encodeFeatureDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: len }] })),
      );
      return { vfd, fd, vdev: m.vfio.deviceOf(vfd) };
    },
  };
  return s;
}

export type Setup = ReturnType<typeof setup>;

export interface RegArgs {
  pd: IbvPd | null;
  offset: bigint;
  length: bigint;
  iova: bigint;
  fd: number;
  access: number;
  mlx5Access: number;
}

function defaults(fd: number): RegArgs {
  return { pd: null, offset: OFFSET, length: LENGTH, iova: IOVA, fd, access: ACCESS, mlx5Access: DD };
}

/** Registration must have failed with `errno` and left nothing behind. */
export function failedClean(
  s: Setup,
  before: ReturnType<Setup["snapshot"]>,
  mr: IbvMr | null,
  errno: string,
) {
  assert.equal(mr, null, "registration should fail");
  assert.equal(s.lib.errno, errnoOf(errno), `errno ${s.lib.errno}, expected ${errno}`);
  assert.deepEqual(s.snapshot(), before, "no attachment, mkey, list entry or reference left");
}

export function errnoOf(name: string): number {
  return new KernelError(name as never, "x").errno;
}

export function vpdWith(vu: string | Uint8Array): Uint8Array {
  return buildVpd({
    idString: "ConnectX-8",
    readOnly: [
      ["PN", "900-9X81E"],
      ["VU", vu],
    ],
  });
}

export function ok(r: TranslateResult) {
  assert.ok(r.ok, r.ok ? "" : `${r.statusName} ${r.reason}: ${r.detail}`);
  return r;
}
