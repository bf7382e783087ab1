/**
 * The VFIO dma-buf lifecycle of the demo, run on the model (nothing here is canned): SPDK owns the
 * NVMe through vfio-pci, exports its CMB, two importers map it (one by PCI bus address, one
 * through the IOMMU), then a reset, a memory-decode toggle and the close revoke it.
 */
import { KernelError } from "../core/errors.js";
import { UserBuffer } from "../core/file.js";
import type { DmaBuf } from "../dmabuf/dma-buf.js";
import { DynamicImporter } from "../dmabuf/importer.js";
import { dmaBufDmaOf } from "../dmabuf/phys-vec.js";
import { describeProfile, Machine } from "../machine/index.js";
import type { Fabric } from "../pci/fabric.js";
import { PCI_COMMAND, PCI_COMMAND_MEMORY } from "../pci/regs.js";
import { VfioDmaBuf } from "../vfio/dma-buf.js";
import { encodeFeatureDmaBuf, VFIO_IOCTL } from "../vfio/index.js";

export interface LifecycleStep {
  /** What the user (or the device) did. */
  action: string;
  /** What the kernel answered: "0", "fd 5", "-ENODEV (buffer is revoked)". */
  result: string;
  /** move_notify calls per importer caused by this step. */
  notified: Record<string, number>;
  /** Buffer state after the step. */
  state: string;
  /** Extra facts (map type, addresses, IOMMU translation). */
  facts: string[];
}

export interface Lifecycle {
  kernel: string;
  nvme: string;
  cmb: { bar: number; size: string; cpuAddress: string };
  steps: LifecycleStep[];
  /** The same map under the Kconfig default CONFIG_DMABUF_MOVE_NOTIFY=n. */
  withoutMoveNotify: { result: string; why: string };
}

/** What SPDK does through the VFIO config region: COMMAND.MEMORY set or cleared. */
export function setMemoryDecode(m: Machine, devFd: number, on: boolean): void {
  const cur = m.vfio.configRead(devFd, PCI_COMMAND, 2);
  m.vfio.configWrite(devFd, PCI_COMMAND, 2, on ? cur | PCI_COMMAND_MEMORY : cur & ~PCI_COMMAND_MEMORY);
}

const hex = (v: bigint) => `0x${v.toString(16)}`;

export function vfioLifecycle(
  fabric: () => Fabric,
  nvmeBdf: string,
  nicBdf: string,
  remoteBdf: string,
): Lifecycle {
  const m = new Machine(fabric(), { kernel: { moveNotify: true } });
  const nvme = m.device(nvmeBdf);
  const cmbBar = Math.max(0, nvme.barNames.indexOf("CMB"));
  const cmb = nvme.resources[cmbBar];
  const steps: LifecycleStep[] = [];
  let buf: DmaBuf | null = null;
  const importers: DynamicImporter[] = [];
  const state = () => (buf && buf.priv instanceof VfioDmaBuf ? buf.priv.state : "-");
  const step = (action: string, body: () => { result: string; facts?: string[] }) => {
    const before = importers.map((i) => i.notifications);
    let out: { result: string; facts?: string[] };
    try {
      out = body();
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      out = { result: `-${e.errnoName} (${e.check})` };
    }
    const notified: Record<string, number> = {};
    importers.forEach((imp, i) => {
      const n = imp.notifications - before[i];
      if (n) notified[imp.label] = n;
    });
    steps.push({ action, result: out.result, notified, state: state(), facts: out.facts ?? [] });
  };
  const mapFacts = (imp: DynamicImporter) => {
    const mp = imp.map(0);
    const d = dmaBufDmaOf(mp.sgt);
    const e = mp.sgt.sgl[0];
    const facts = [
      `${d?.mode === "bus" ? "BUS_ADDR: PCI bus address" : d?.mode === "iova" ? "THRU_HOST_BRIDGE: IOVA through the IOMMU" : "THRU_HOST_BRIDGE: per-range mapping"} ${hex(e.dmaAddress)}, ${mp.sgt.nents} SG entr${mp.sgt.nents === 1 ? "y" : "ies"} of ${hex(e.dmaLen)} bytes`,
    ];
    if (d?.mode === "iova") {
      const t = m.iommu.translate(imp.dev as never, e.dmaAddress, "write");
      if (t.ok)
        facts.push(
          `IOMMU of ${(imp.dev as { bdf: string }).bdf}: IOVA ${hex(e.dmaAddress)} → CPU ${hex(t.phys)} (MMIO, ${t.prot.read ? "read+" : ""}write)`,
        );
    }
    return { result: "0", facts };
  };

  let devFd = -1;
  let bufFd = -1;
  step(`open ${nvmeBdf} through vfio-pci (SPDK takes the NVMe)`, () => {
    devFd = m.vfio.open(nvmeBdf);
    return { result: `fd ${devFd}`, facts: [`reset at open works: ${m.vfio.deviceOf(devFd).resetWorks}`] };
  });
  step(`VFIO_DEVICE_FEATURE(GET | DMA_BUF): BAR${cmbBar} (CMB), range [0, 1 MiB)`, () => {
    const bytes = encodeFeatureDmaBuf({ regionIndex: cmbBar, ranges: [{ offset: 0n, length: 0x10_0000n }] });
    bufFd = m.vfio.ioctl(devFd, VFIO_IOCTL.VFIO_DEVICE_FEATURE, new UserBuffer(bytes));
    buf = m.dmabuf.get(m.fds, bufFd);
    return {
      result: `fd ${bufFd}`,
      facts: [
        `argument bytes: ${Buffer.from(bytes).toString("hex")}`,
        `exp_name ${buf.expName}, size ${hex(buf.size)}`,
      ],
    };
  });
  const nic = new DynamicImporter(m.dmabuf, m.device(nicBdf), "nic");
  const remote = new DynamicImporter(m.dmabuf, m.device(remoteBdf), "gpu1");
  importers.push(nic, remote);
  step(`${nicBdf} (RDMA NIC, same switch) attaches as a dynamic peer2peer importer`, () => {
    nic.attach(buf!);
    return { result: "0" };
  });
  step(`${nicBdf} maps the buffer`, () => mapFacts(nic));
  step(`${remoteBdf} (GPU behind another host bridge) attaches and maps`, () => {
    remote.attach(buf!);
    return mapFacts(remote);
  });
  step("VFIO_DEVICE_RESET (function-level reset of the NVMe)", () => {
    m.vfio.ioctl(devFd, VFIO_IOCTL.VFIO_DEVICE_RESET, new UserBuffer(new Uint8Array(0)));
    return {
      result: "0",
      facts: ["revoked before the reset, restored after it: each importer is told twice and must re-map"],
    };
  });
  step("the NIC's old mapping after the reset", () => {
    const ok = nic.dma(nic.mappings[0]);
    return {
      result: ok
        ? "usable"
        : "refused: invalidated by move_notify (a DMA through it would be a protocol violation)",
    };
  });
  step("the NIC unmaps and maps again", () => {
    nic.unmapAll();
    return mapFacts(nic);
  });
  step("SPDK clears COMMAND.MEMORY through the VFIO config region", () => {
    setMemoryDecode(m, devFd, false);
    return { result: "0" };
  });
  step("the NIC tries to map while decode is off", () => {
    nic.unmapAll();
    nic.map(0);
    return { result: "0" };
  });
  step("SPDK sets COMMAND.MEMORY again", () => {
    setMemoryDecode(m, devFd, true);
    return { result: "0" };
  });
  step("the NIC maps again", () => mapFacts(nic));
  step(`SPDK closes the device fd`, () => {
    m.vfio.close(devFd);
    return {
      result: "0",
      facts: ["cleanup revokes for good: the buffer can never be mapped again, even after a re-open"],
    };
  });
  step("the NIC tries to map the dead buffer", () => {
    nic.unmapAll();
    nic.map(0);
    return { result: "0" };
  });

  // The Kconfig default: CONFIG_DMABUF_MOVE_NOTIFY=n pins dynamic importers on map — VFIO refuses.
  const n = new Machine(fabric(), { kernel: { moveNotify: false } });
  const fd = n.vfio.open(nvmeBdf);
  const b = n.dmabuf.get(
    n.fds,
    n.vfio.ioctl(
      fd,
      VFIO_IOCTL.VFIO_DEVICE_FEATURE,
      new UserBuffer(
        encodeFeatureDmaBuf({ regionIndex: cmbBar, ranges: [{ offset: 0n, length: 0x10_0000n }] }),
      ),
    ),
  );
  const imp = new DynamicImporter(n.dmabuf, n.device(nicBdf), "nic");
  imp.attach(b);
  let withoutMoveNotify = { result: "0", why: "" };
  try {
    imp.map(0);
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    withoutMoveNotify = {
      result: `-${e.errnoName}`,
      why: "with CONFIG_DMABUF_MOVE_NOTIFY=n the core pins every importer on map, and a VFIO buffer refuses pinning (a pinned importer could not be revoked)",
    };
  }
  return {
    kernel: describeProfile(m.kernel),
    nvme: nvmeBdf,
    cmb: { bar: cmbBar, size: `${cmb.len >> 20n} MiB`, cpuAddress: hex(cmb.start) },
    steps,
    withoutMoveNotify,
  };
}
