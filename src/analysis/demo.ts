/**
 * The story `peerdma demo` tells on the built-in storage/RDMA host, as data. Each section holds
 * facts computed by the model (never canned text); the CLI renders them.
 */

import { InputError } from "../core/errors.js";
import { loadBuiltin } from "../import/builtin.js";
import { groupsAsBdfs } from "../iommu/groups.js";
import { Machine } from "../machine/machine.js";
import type { PciDev } from "../pci/device.js";
import { describeVpd } from "../pci/vpd.js";
import { pathPerformance } from "../perf/path.js";
import {
  type DataDirectRun,
  dataDirect,
  gpuToGpu,
  type RdmaStep,
  type SpdkOverRdma,
  spdkOverRdma,
} from "./demo-rdma.js";
import { type Lifecycle, vfioLifecycle } from "./demo-vfio.js";
import { type Explanation, explain } from "./explain.js";
import { buildMatrix, type Matrix } from "./matrix.js";

export interface DemoCandidatePath {
  label: string;
  initiator: string;
  target: string;
  mapType: string;
  pathType: string;
  hops: string[];
  bandwidthGBps: number | null;
  effectiveGBps: number | null;
  limit: string;
}

export interface DemoReport {
  machine: string;
  description: string;
  kernel: { profile: string; pciP2pdma: boolean };
  cpu: string;
  spdk: {
    nvme: string;
    nic: string;
    cmb: { bar: number; cpuAddress: string; size: string };
    explanation: Explanation;
    lifecycle: Lifecycle;
    /** A remote NVMe WRITE submitted with RDMA WRITEs alone, then reset, decode off, close. */
    overRdma: SpdkOverRdma;
  };
  dataDirect: { gpu: string; candidates: DemoCandidatePath[]; faster: string; run: DataDirectRun };
  gpuToGpu: Explanation;
  /** gpu1's BAR1 exported through VFIO, imported and written by gpu0, then revoked. */
  gpuToGpuRun: RdmaStep[];
  iommuGroups: { id: number; devices: string[] }[];
  matrix: Matrix;
}

function candidate(label: string, initiator: PciDev, target: PciDev, m: Machine): DemoCandidatePath {
  const e = explain(m, target, initiator);
  const perf = pathPerformance(initiator, target);
  return {
    label,
    initiator: initiator.bdf,
    target: target.bdf,
    mapType: e.mapType,
    pathType: e.pathType,
    // explain() lists the path from the provider (the target); show it in the direction data flows
    hops: e.hops
      .map((h) =>
        h.step === "device"
          ? h.bdf!
          : h.step === "host-bridge"
            ? `host bridge ${h.label}`
            : `interconnect ${h.label}`,
      )
      .reverse(),
    bandwidthGBps: perf.bandwidthGBps,
    effectiveGBps: perf.effectiveGBps,
    limit: perf.limit,
  };
}

/** The VPD-R "VU" keyword of a function (what mlx5 matches the NIC's firmware VUID against). */
function vuidOf(dev: PciDev): string {
  const vu = dev.vpd ? describeVpd(dev.vpd).readOnly.VU : undefined;
  if (!vu) throw new InputError(`${dev.bdf} has no VPD-R VU keyword`, "builtin:storage-rdma");
  return vu;
}

export function storageRdmaDemo(): DemoReport {
  const { fabric, description } = loadBuiltin("storage-rdma");
  const fresh = () => loadBuiltin("storage-rdma").fabric;
  const m = new Machine(fabric);
  const nvme = m.device("0000:03:00.0");
  const nic = m.device("0000:04:00.0");
  const gpu0 = m.device("0000:06:00.0");
  const gpu1 = m.device("0000:31:00.0");
  const dmaPf = m.device("0000:05:00.0");
  const cx8 = m.device("0000:81:00.0");
  const cmbBar = nvme.barNames.indexOf("CMB");
  const cmb = nvme.resources[cmbBar];
  const viaNic = candidate("ordinary MR: the NIC PF DMAs itself", cx8, gpu0, m);
  const viaDd = candidate("data direct: the DMA PF in the GPU's switch", dmaPf, gpu0, m);
  return {
    machine: m.name,
    description: description.description ?? "",
    kernel: { profile: m.kernel.profile, pciP2pdma: m.kernel.pciP2pdma },
    cpu: `${m.cpu.vendor} family 0x${m.cpu.family.toString(16)}${m.cpu.modelName ? ` (${m.cpu.modelName})` : ""}`,
    spdk: {
      nvme: nvme.bdf,
      nic: nic.bdf,
      cmb: { bar: cmbBar, cpuAddress: `0x${cmb.start.toString(16)}`, size: `${cmb.len >> 20n} MiB` },
      explanation: explain(m, nvme, nic),
      lifecycle: vfioLifecycle(fresh, nvme.bdf, nic.bdf, gpu1.bdf),
      overRdma: spdkOverRdma(fresh, nvme.bdf, nic.bdf),
    },
    dataDirect: {
      gpu: gpu0.bdf,
      candidates: [viaNic, viaDd],
      faster: (viaDd.effectiveGBps ?? 0) > (viaNic.effectiveGBps ?? 0) ? "data direct" : "ordinary",
      run: dataDirect(fresh, {
        nic: cx8.bdf,
        dmaPf: dmaPf.bdf,
        gpu: gpu0.bdf,
        vfioGpu: gpu1.bdf,
        vuid: vuidOf(dmaPf),
      }),
    },
    gpuToGpu: explain(m, gpu1, gpu0),
    gpuToGpuRun: gpuToGpu(fresh, gpu1.bdf, gpu0.bdf),
    iommuGroups: groupsAsBdfs(m.iommuGroups.groups),
    matrix: buildMatrix(m),
  };
}
