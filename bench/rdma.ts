/**
 * RDMA on a VFIO dma-buf, on the built-in storage/RDMA host (NVMe CMB exported, mlx5_0 imports):
 *  - MR lifecycle: ibv_reg_dmabuf_mr + first RDMA WRITE (page fault → map) + ibv_dereg_mr, against
 *    the dma-buf core doing the same attach → map → unmap → detach for a plain dynamic importer;
 *  - 4 KiB RDMA WRITEs through a live MR, against the DMA engine writing the same bytes to the same
 *    bus address directly (the price of MR translation and the revoke check); then the same WRITEs
 *    with the per-link TLP trace on, against themselves untraced.
 */
import { UserBuffer } from "../src/core/file.js";
import { DmaEngine } from "../src/dataplane/engine.js";
import { DynamicImporter } from "../src/dmabuf/importer.js";
import { loadBuiltin } from "../src/import/builtin.js";
import { Machine } from "../src/machine/machine.js";
import {
  IB_ACCESS,
  ibvAllocPd,
  ibvDeregMr,
  ibvOpenDevice,
  ibvRegDmabufMr,
  RdmaCore,
  RdmaDataPlane,
  rdmaOf,
} from "../src/rdma/index.js";
import { encodeFeatureDmaBuf, VFIO_IOCTL } from "../src/vfio/index.js";
import { fmtRate, rate, report } from "./harness.js";

const NVME = "0000:03:00.0";
const NIC = "0000:04:00.0";
const ACCESS = IB_ACCESS.LOCAL_WRITE | IB_ACCESS.REMOTE_WRITE | IB_ACCESS.REMOTE_READ;
const IOVA = 0x1_0000_0000n;
const LEN = 0x20_0000n;

function rig() {
  const m = new Machine(loadBuiltin("storage-rdma").fabric, { kernel: { moveNotify: true } });
  m.log.enabled = false;
  const dev = m.vfio.open(NVME);
  const fd = m.vfio.ioctl(
    dev,
    VFIO_IOCTL.VFIO_DEVICE_FEATURE,
    new UserBuffer(encodeFeatureDmaBuf({ regionIndex: 2, ranges: [{ offset: 0n, length: LEN }] })),
  );
  const rdma = rdmaOf(m);
  const ib = rdma.addMlx5Device(NIC, { vhcaId: 1 });
  const lib = new RdmaCore(rdma);
  const ctx = ibvOpenDevice(lib, ib.name);
  const pd = ctx && ibvAllocPd(ctx);
  if (!pd) throw new Error(`bench rdma: no PD (errno ${lib.errno})`);
  return { m, fd, rdma, ib, lib, pd, dp: new RdmaDataPlane(rdma, { trace: false }) };
}

export function benchRdma(): void {
  const s = rig();
  const data = new Uint8Array(4096).fill(0x5a);
  // keep the library's ioctl trace from growing without bound over millions of calls
  const trim = () => {
    s.lib.trace.length = 0;
  };
  const mrCycle = rate(() => {
    for (let i = 0; i < 100; i++) {
      const mr = ibvRegDmabufMr(s.pd, 0n, LEN, IOVA, s.fd, ACCESS);
      if (!mr) throw new Error(`bench rdma: registration failed (errno ${s.lib.errno})`);
      s.dp.rdmaWrite(s.ib, mr.rkey, IOVA, data.subarray(0, 64));
      if (ibvDeregMr(mr) !== 0) throw new Error("bench rdma: dereg failed");
    }
    trim();
    return 100;
  });
  const buf = s.m.dmabuf.get(s.m.fds, s.fd);
  const importer = new DynamicImporter(s.m.dmabuf, s.m.device(NIC), "bench");
  const coreCycle = rate(() => {
    for (let i = 0; i < 100; i++) {
      importer.attach(buf);
      importer.map(0);
      importer.unmapAll();
      importer.detach();
    }
    return 100;
  });
  report({
    bench: "mlx5 dma-buf MR: reg + first WRITE + dereg",
    figure: fmtRate(mrCycle),
    baseline: fmtRate(coreCycle),
    ratio: `${(mrCycle / coreCycle).toFixed(2)}×`,
  });

  const mr = ibvRegDmabufMr(s.pd, 0n, LEN, IOVA, s.fd, ACCESS);
  if (!mr) throw new Error("bench rdma: registration failed");
  const first = s.dp.rdmaWrite(s.ib, mr.rkey, IOVA, data);
  if (first.statusName !== "SUCCESS") throw new Error(`bench rdma: write failed: ${first.detail}`);
  const writes = rate(() => {
    for (let i = 0; i < 100; i++) s.dp.rdmaWrite(s.ib, mr.rkey, IOVA + BigInt((i & 15) * 4096), data);
    return 100;
  });
  const engine = DmaEngine.of(s.m);
  const nic = s.m.device(NIC);
  const bus = s.m.device(NVME).busAddress(2);
  const direct = rate(() => {
    for (let i = 0; i < 100; i++)
      engine.dmaWrite(nic, bus + BigInt((i & 15) * 4096), data, { addressKind: "bus", trace: false });
    return 100;
  });
  report({
    bench: "RDMA WRITE 4 KiB into the NVMe CMB through an MR",
    figure: fmtRate(writes),
    baseline: fmtRate(direct),
    ratio: `${(writes / direct).toFixed(2)}×`,
  });
  const traced = new RdmaDataPlane(s.rdma, { trace: true });
  const tracedWrites = rate(() => {
    for (let i = 0; i < 20; i++) traced.rdmaWrite(s.ib, mr.rkey, IOVA + BigInt((i & 15) * 4096), data);
    return 20;
  });
  report({
    bench: "same, every TLP encoded and decoded on every link",
    figure: fmtRate(tracedWrites),
    baseline: fmtRate(writes),
    ratio: `${(tracedWrites / writes).toFixed(2)}×`,
  });
}
