/**
 * The RDMA half of the demo, run on the model: SPDK's NVMe-oF target reached by an RDMA NIC
 * straight through the NVMe's CMB and doorbell (VFIO dma-bufs registered as mlx5 MRs), and the
 * data-direct path of a ConnectX-8 into a GPU's BAR. Every line is what the model answered.
 */

import { errnoName } from "../core/errno.js";
import { KernelError } from "../core/errors.js";
import { UserBuffer } from "../core/file.js";
import { hex } from "../core/hex.js";
import { DmaEngine } from "../dataplane/engine.js";
import { DynamicImporter } from "../dmabuf/importer.js";
import { dmaBufDmaOf } from "../dmabuf/phys-vec.js";
import { Machine } from "../machine/machine.js";
import { encodeSqe, NVME_IO, NvmeController, NvmeHost } from "../nvme/index.js";
import type { Fabric } from "../pci/fabric.js";
import { pathPerformance } from "../perf/path.js";
import {
  cStringOf,
  IB_ACCESS,
  type IbvMr,
  ibvAllocPd,
  ibvOpenDevice,
  ibvRegDmabufMr,
  MLX5DV_REG_DMABUF_ACCESS_DATA_DIRECT,
  machineForProfile,
  mlx5dvGetDataDirectSysfsPath,
  mlx5dvRegDmabufMr,
  PinnableExporter,
  RdmaCore,
  RdmaDataPlane,
  rdmaOf,
  type WorkCompletion,
} from "../rdma/index.js";
import { encodeFeatureDmaBuf, VFIO_IOCTL } from "../vfio/index.js";
import { setMemoryDecode } from "./demo-vfio.js";

export interface RdmaStep {
  action: string;
  /** "SUCCESS, 4096 bytes from 0000:04:00.0", "REM_ACCESS_ERR (…)", "0", "-EOPNOTSUPP". */
  result: string;
  facts: string[];
}

export interface SpdkOverRdma {
  nvme: string;
  nic: string;
  steps: RdmaStep[];
  /** Bytes that reached an NVMe range after its export was revoked (must be 0). */
  bytesIntoRevokedMemory: number;
}

export interface DataDirectRegistration {
  label: string;
  /** "0" (MR registered) or "-EOPNOTSUPP (…)". */
  result: string;
  issuer?: string;
  mapType?: string;
  /** Measured through the model's fabric for a 1 MiB RDMA WRITE. */
  writeStatus?: string;
  effectiveGBps?: number | null;
  limit?: string;
  projected?: boolean;
}

export interface DataDirectRun {
  nic: string;
  dmaPf: string;
  vuid: string;
  /** What `mlx5dv_get_data_direct_sysfs_path` returns on the NIC. */
  sysfsPath: string;
  registrations: DataDirectRegistration[];
}

const ACCESS = IB_ACCESS.LOCAL_WRITE | IB_ACCESS.REMOTE_WRITE | IB_ACCESS.REMOTE_READ;
const MiB = 1n << 20n;

const le32 = (v: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
};

function wcText(wc: WorkCompletion): string {
  return wc.statusName === "SUCCESS"
    ? `SUCCESS, ${wc.byteLen} bytes written by ${wc.issuer} (${wc.mapType})`
    : `${wc.statusName}, ${wc.bytesDelivered} bytes delivered (${wc.detail})`;
}

function errText(e: unknown): string {
  if (!(e instanceof KernelError)) throw e;
  return `-${e.errnoName} (${e.check})`;
}

/** A list of steps and the function that runs one: a kernel error becomes the step's result. */
function stepper() {
  const steps: RdmaStep[] = [];
  const step = (action: string, body: () => { result: string; facts?: string[] }) => {
    let out: { result: string; facts?: string[] };
    try {
      out = body();
    } catch (e) {
      out = { result: errText(e) };
    }
    steps.push({ action, result: out.result, facts: out.facts ?? [] });
  };
  return { steps, step };
}

/**
 * SPDK owns the NVMe through vfio-pci with an I/O queue pair whose SQ is in the CMB. It exports the
 * CMB and the doorbell page as dma-bufs and registers both as MRs on the RDMA NIC; a remote host
 * then submits an NVMe WRITE with nothing but RDMA WRITEs: the data, the command, the doorbell.
 */
export function spdkOverRdma(fabric: () => Fabric, nvmeBdf: string, nicBdf: string): SpdkOverRdma {
  const m = machineForProfile(fabric(), {}, { kernel: { moveNotify: true } }).machine;
  const { steps, step } = stepper();

  const engine = DmaEngine.of(m);
  const nvme = m.device(nvmeBdf);
  const devFd = m.vfio.open(nvmeBdf);
  const ctrl = new NvmeController(engine, nvme);
  const host = new NvmeHost(engine, ctrl);
  const cmbBar = ctrl.cmbBar ?? 2;
  step("SPDK enables the controller and creates I/O queue pair 1, SQ in the CMB", () => {
    const ready = host.enable();
    const cq = host.createIoCq(1, 16);
    const sq = host.createIoSq(1, 16, 1, { cmbOffset: 0n });
    return {
      result: ready && NvmeHost.ok(cq) && NvmeHost.ok(sq) ? "CSTS.RDY, queues created" : "failed",
      facts: [
        `SQ 1 at CMB bus address ${hex(host.cmb(0n).bus)}, its tail doorbell at ${hex(host.doorbellBus(1, "sq"))}`,
      ],
    };
  });
  const exportRange = (bar: number, offset: bigint, length: bigint) =>
    m.vfio.ioctl(
      devFd,
      VFIO_IOCTL.VFIO_DEVICE_FEATURE,
      new UserBuffer(encodeFeatureDmaBuf({ regionIndex: bar, ranges: [{ offset, length }] })),
    );
  let cmbFd = -1;
  let bellFd = -1;
  step(`export BAR${cmbBar} (CMB) [0, 2 MiB) and BAR0 [0x1000, 0x2000) (doorbells) as dma-bufs`, () => {
    cmbFd = exportRange(cmbBar, 0n, 2n * MiB);
    bellFd = exportRange(0, 0x1000n, 0x1000n);
    return { result: `fds ${cmbFd}, ${bellFd}` };
  });

  const rdma = rdmaOf(m);
  const ib = rdma.addMlx5Device(nicBdf, { vhcaId: 1 });
  const lib = new RdmaCore(rdma);
  const ctx = ibvOpenDevice(lib, ib.name);
  const pd = ctx ? ibvAllocPd(ctx) : null;
  let cmbMr: IbvMr | null = null;
  let bellMr: IbvMr | null = null;
  const CMB_IOVA = 0x1_0000_0000n;
  const BELL_IOVA = 0x2_0000_0000n;
  step(`ibv_reg_dmabuf_mr on ${ib.name} (${nicBdf}) for both buffers`, () => {
    if (!pd) return { result: `-${errnoName(lib.errno)}` };
    cmbMr = ibvRegDmabufMr(pd, 0n, 2n * MiB, CMB_IOVA, cmbFd, ACCESS);
    bellMr =
      cmbMr &&
      ibvRegDmabufMr(pd, 0n, 0x1000n, BELL_IOVA, bellFd, IB_ACCESS.LOCAL_WRITE | IB_ACCESS.REMOTE_WRITE);
    if (!cmbMr || !bellMr) return { result: `-${errnoName(lib.errno)}` };
    return {
      result: "0",
      facts: [
        `CMB MR rkey ${hex(cmbMr.rkey)}, doorbell MR rkey ${hex(bellMr.rkey)} (dynamic: CONFIG_DMABUF_MOVE_NOTIFY=y)`,
      ],
    };
  });

  const dp = new RdmaDataPlane(rdma);
  const DATA_OFF = 0x10_0000n;
  const lba = 64n;
  const payload = Uint8Array.from({ length: 4096 }, (_, i) => (i * 31 + 7) & 0xff);
  /** One remote NVMe WRITE by RDMA alone; the completion SPDK reaps. */
  const remoteWrite = (cid: number) => {
    const rkeyCmb = cmbMr!.rkey;
    const rkeyBell = bellMr!.rkey;
    const mark = m.log.length;
    const data = dp.rdmaWrite(ib, rkeyCmb, CMB_IOVA + DATA_OFF, payload);
    if (data.statusName !== "SUCCESS") return { result: `data: ${wcText(data)}`, facts: [] };
    const slot = host.sqSlotBus(1) - host.cmb(0n).bus;
    const sqe = encodeSqe({
      opcode: NVME_IO.WRITE,
      cid,
      nsid: 1,
      prp1: host.cmb(DATA_OFF).bus,
      cdw10: Number(lba),
      cdw12: 7,
    });
    const cmd = dp.rdmaWrite(ib, rkeyCmb, CMB_IOVA + slot, sqe);
    if (cmd.statusName !== "SUCCESS") return { result: `command: ${wcText(cmd)}`, facts: [] };
    const tail = host.advanceTail(1);
    const bellOff = BigInt(ctrl.doorbellOffset(1, "sq")) - 0x1000n;
    const bell = dp.rdmaWrite(ib, rkeyBell, BELL_IOVA + bellOff, le32(tail));
    if (bell.statusName !== "SUCCESS") return { result: `doorbell: ${wcText(bell)}`, facts: [] };
    const cqes = host.reap(1);
    const landed = Buffer.from(ctrl.namespace.read(lba * 512n, payload.length)).equals(payload);
    const inCmb = engine.cpuRead(host.cmb(DATA_OFF).cpu, 16).data;
    const ran = m.log
      .since(mark)
      .map((x) => x.event)
      .find((e) => e.kind === "nvme-command");
    return {
      result: cqes.length ? NvmeHost.describe(cqes[0]) : "no completion",
      facts: [
        `data ${wcText(data)}`,
        `  CMB +${hex(DATA_OFF)} now holds ${Buffer.from(inCmb).toString("hex").replace(/(..)/g, "$1 ").trim()} …`,
        `command ${wcText(cmd)}`,
        `doorbell ${wcText(bell)}: SQ 1 tail → ${tail}`,
        ran && ran.kind === "nvme-command"
          ? `the controller executed ${ran.name} (opcode ${hex(ran.opcode, 2)}, cid ${ran.cid}, SQ ${ran.sqid}) fetched from the ${ran.fetchedFrom === "cmb" ? "CMB" : "host memory"}: ${ran.detail}`
          : "the controller executed nothing",
        `LBA ${lba}..${lba + 7n} ${landed ? "hold the 4 KiB payload" : "do NOT hold the payload"}`,
      ],
    };
  };
  step("a remote host RDMA-WRITEs 4 KiB, an NVMe WRITE command and the doorbell", () => remoteWrite(0x41));
  step("VFIO_DEVICE_RESET: both buffers revoked, then restored; the MRs re-map on next use", () => {
    m.vfio.ioctl(devFd, VFIO_IOCTL.VFIO_DEVICE_RESET, new UserBuffer(new Uint8Array(0)));
    const wc = dp.rdmaWrite(ib, cmbMr!.rkey, CMB_IOVA + DATA_OFF, payload.subarray(0, 64));
    return {
      result: "0",
      facts: [
        `RDMA WRITE after the reset: ${wcText(wc)}`,
        `the controller after the reset: ${ctrl.ready ? "still ready" : "not ready, CC.EN 0"}, I/O SQ 1 ${ctrl.queue("sq", 1) ? "still there" : "gone"}`,
      ],
    };
  });
  step("SPDK re-initialises the controller (same SQ in the CMB)", () => {
    const ready = host.enable();
    const cq = host.createIoCq(1, 16);
    const sq = host.createIoSq(1, 16, 1, { cmbOffset: 0n });
    return { result: ready && NvmeHost.ok(cq) && NvmeHost.ok(sq) ? "CSTS.RDY, queues created" : "failed" };
  });
  step("the remote host submits the same NVMe WRITE again, by RDMA alone", () => remoteWrite(0x42));
  step("SPDK clears COMMAND.MEMORY: the buffers are revoked", () => {
    setMemoryDecode(m, devFd, false);
    const wc = dp.rdmaWrite(ib, cmbMr!.rkey, CMB_IOVA + DATA_OFF, payload.subarray(0, 64));
    return { result: "0", facts: [`RDMA WRITE while decode is off: ${wcText(wc)}`] };
  });
  step("SPDK sets COMMAND.MEMORY again", () => {
    setMemoryDecode(m, devFd, true);
    const wc = dp.rdmaWrite(ib, cmbMr!.rkey, CMB_IOVA + DATA_OFF, payload.subarray(0, 64));
    return { result: "0", facts: [`RDMA WRITE: ${wcText(wc)}`] };
  });
  step("SPDK exits (the VFIO device fd closes): revoked for good", () => {
    m.vfio.close(devFd);
    const wc = dp.rdmaWrite(ib, cmbMr!.rkey, CMB_IOVA + DATA_OFF, payload.subarray(0, 64));
    return { result: "0", facts: [`RDMA WRITE after the close: ${wcText(wc)}`] };
  });
  return {
    nvme: nvmeBdf,
    nic: nicBdf,
    steps,
    bytesIntoRevokedMemory: dp.revokedWrites.reduce((n, w) => n + w.bytes, 0),
  };
}

/**
 * A ConnectX-8 NIC PF far from the GPU and its data-direct DMA PF in the GPU's switch: the DMA PF
 * is matched by VUID, an MR registered with MLX5DV_REG_DMABUF_ACCESS_DATA_DIRECT is mapped for it
 * and its traffic stays in the switch. A VFIO export cannot be used that way on the mainline series
 * (the pinned import cannot be revoked); the v7.0 profile's revocable pinned import is projected.
 */
export function dataDirect(
  fabric: () => Fabric,
  o: { nic: string; dmaPf: string; gpu: string; vfioGpu: string; vuid: string },
): DataDirectRun {
  const registrations: DataDirectRegistration[] = [];
  const boot = (projected: boolean) => {
    const profile = projected ? { kernelProfile: "v7.0" as const, ddRevocablePinned: true } : {};
    const { machine: m } = machineForProfile(fabric(), profile, { kernel: { moveNotify: true } });
    const rdma = rdmaOf(m, { profile });
    rdma.probeDmaPf(o.dmaPf);
    const ib = rdma.addMlx5Device(o.nic, { vhcaId: 2, firmwareVuid: o.vuid });
    const lib = new RdmaCore(rdma);
    const ctx = ibvOpenDevice(lib, ib.name)!;
    return { m, rdma, ib, lib, ctx, pd: ibvAllocPd(ctx)!, dp: new RdmaDataPlane(rdma) };
  };
  const s = boot(false);
  const pathBuf = new Uint8Array(256);
  const rc = mlx5dvGetDataDirectSysfsPath(s.ctx, pathBuf);
  const sysfsPath = rc === 0 ? cStringOf(pathBuf) : `-${errnoName(rc)}`;
  const gpuBuf = new PinnableExporter(s.m, { dev: o.gpu, bar: 1, size: 1n << 30n, name: "gpu0" });
  const IOVA = 0x7f00_0000_0000n;
  const measure = (
    label: string,
    sys: ReturnType<typeof boot>,
    owner: string,
    mr: IbvMr | null,
    projected = false,
  ): DataDirectRegistration => {
    if (!mr) {
      const why = sys.lib.trace.at(-1)?.why;
      return {
        label,
        result: `-${errnoName(sys.lib.errno)}${why ? ` (${why})` : ""}`,
        ...(projected ? { projected: true } : {}),
      };
    }
    const wc = sys.dp.rdmaWrite(sys.ib, mr.rkey, IOVA, new Uint8Array(1 << 20));
    const issuer = wc.issuer ? sys.m.device(wc.issuer) : null;
    const perf = issuer ? pathPerformance(issuer, sys.m.device(owner)) : null;
    return {
      label,
      result: "0",
      issuer: wc.issuer,
      mapType: wc.mapType,
      writeStatus: wcText(wc),
      effectiveGBps: perf?.effectiveGBps ?? null,
      limit: perf?.limit,
      ...(projected ? { projected: true } : {}),
    };
  };
  registrations.push(
    measure(
      "ibv_reg_dmabuf_mr (ordinary MR: the NIC PF DMAs itself)",
      s,
      o.gpu,
      ibvRegDmabufMr(s.pd, 0n, 2n * MiB, IOVA, gpuBuf.fd, ACCESS),
    ),
    measure(
      "mlx5dv_reg_dmabuf_mr(DATA_DIRECT) (the DMA PF in the GPU's switch DMAs)",
      s,
      o.gpu,
      mlx5dvRegDmabufMr(s.pd, 0n, 2n * MiB, IOVA, gpuBuf.fd, ACCESS, MLX5DV_REG_DMABUF_ACCESS_DATA_DIRECT),
    ),
  );
  // a VFIO-owned GPU exports its BAR instead: data direct pins, VFIO refuses pins
  for (const projected of [false, true]) {
    const v = projected ? boot(true) : s;
    const dev = v.m.vfio.open(o.vfioGpu);
    const fd = v.m.vfio.ioctl(
      dev,
      VFIO_IOCTL.VFIO_DEVICE_FEATURE,
      new UserBuffer(encodeFeatureDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 2n * MiB }] })),
    );
    registrations.push(
      measure(
        projected
          ? "same on the v7.0 profile with revocable pinned imports (projected)"
          : `mlx5dv_reg_dmabuf_mr(DATA_DIRECT) on a VFIO export of ${o.vfioGpu} BAR1`,
        v,
        o.vfioGpu,
        mlx5dvRegDmabufMr(v.pd, 0n, 2n * MiB, IOVA, fd, ACCESS, MLX5DV_REG_DMABUF_ACCESS_DATA_DIRECT),
        projected,
      ),
    );
  }
  return { nic: o.nic, dmaPf: o.dmaPf, vuid: o.vuid, sysfsPath, registrations };
}

/**
 * GPU to GPU through VFIO: the exporter GPU's VRAM aperture (BAR1) exported as a dma-buf, the other
 * GPU imports it as a dynamic peer-to-peer importer and writes into it with the DMA address the
 * map gave. A decode-off revoke calls move_notify; an importer that ignores it still holds an IOVA
 * the IOMMU translates (unmapping is the importer's job), but the exporter no longer claims the
 * request: Unsupported Request, and the CPU reads all-ones.
 */
export function gpuToGpu(fabric: () => Fabric, exporterBdf: string, importerBdf: string): RdmaStep[] {
  const m = new Machine(fabric(), { kernel: { moveNotify: true } });
  const engine = DmaEngine.of(m);
  const gpu = m.device(importerBdf);
  const exporter = m.device(exporterBdf);
  const { steps, step } = stepper();
  const data = Uint8Array.from({ length: 256 }, (_, i) => (0xa0 + i) & 0xff);
  const devFd = m.vfio.open(exporterBdf);
  const imp = new DynamicImporter(m.dmabuf, gpu, "gpu0");
  let dma = 0n;
  let kind: "bus" | "iova" = "bus";
  step(`export ${exporterBdf} BAR1 [0, 2 MiB) through VFIO; ${importerBdf} attaches and maps`, () => {
    const fd = m.vfio.ioctl(
      devFd,
      VFIO_IOCTL.VFIO_DEVICE_FEATURE,
      new UserBuffer(encodeFeatureDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 2n * MiB }] })),
    );
    imp.attach(m.dmabuf.get(m.fds, fd));
    const sgt = imp.map(0).sgt;
    const d = dmaBufDmaOf(sgt);
    kind = d?.mode === "bus" ? "bus" : "iova";
    dma = sgt.sgl[0].dmaAddress;
    return {
      result: "0",
      facts: [`${d?.mode === "bus" ? "BUS_ADDR" : "THRU_HOST_BRIDGE"}: DMA address ${hex(dma)} (${kind})`],
    };
  });
  const write = () => {
    const r = engine.dmaWrite(gpu, dma, data, { addressKind: kind, trace: false });
    const back = engine.cpuRead(exporter.resources[1].start, 8).data;
    return {
      result:
        r.status === "SC" ? `${r.bytesDelivered} bytes delivered` : `${r.status}: ${r.reason ?? ""}`.trim(),
      facts: [
        `route: ${r.route ? `${r.route.turn.kind} turn` : "none"}; ${r.bytesDelivered} of ${data.length} bytes reached the exporter's BAR`,
        `exporter's BAR1 +0 reads ${Buffer.from(back).toString("hex").replace(/(..)/g, "$1 ").trim()} …`,
      ],
    };
  };
  step(`${importerBdf} writes 256 bytes to that address`, write);
  step(
    "the exporter's owner clears COMMAND.MEMORY (revoke); an importer ignoring move_notify writes again",
    () => {
      setMemoryDecode(m, devFd, false);
      data.fill(0x5a);
      const w = write();
      return { result: w.result, facts: [`move_notify calls: ${imp.notifications}`, ...w.facts] };
    },
  );
  return steps;
}
