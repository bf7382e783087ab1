import type { Command } from "commander";
import { type DemoReport, storageRdmaDemo } from "../../analysis/demo.js";
import { guard, print, printJson } from "../io.js";
import { renderExplanation } from "./explain.js";
import { renderMatrix } from "./matrix.js";

function indent(text: string, by = "   "): string {
  return text
    .split("\n")
    .map((l) => (l ? by + l : l))
    .join("\n");
}

export function renderDemo(d: DemoReport): string {
  const out: string[] = [];
  out.push(`peerdma demo — machine builtin:${d.machine}`, indent(d.description, "  "), "");
  out.push(
    `Kernel profile: Linux ${d.kernel.profile} semantics, CONFIG_PCI_P2PDMA=${d.kernel.pciP2pdma ? "y" : "n"}. CPU: ${d.cpu}.`,
    "",
  );
  const lc = d.spdk.lifecycle;
  out.push(
    `1. SPDK: the NVMe's CMB exported through VFIO as a dma-buf, used by peers, then revoked`,
    `   Kernel: ${lc.kernel} (the Kconfig default is MOVE_NOTIFY=n; see the end of this section).`,
    "",
  );
  for (const [i, s] of lc.steps.entries()) {
    const notes = Object.entries(s.notified).map(([k, n]) => `${k} ×${n}`);
    out.push(
      `   ${String(i + 1).padStart(2)}. ${s.action}`,
      `       → ${s.result}${notes.length ? `; move_notify: ${notes.join(", ")}` : ""}; buffer ${s.state}`,
      ...s.facts.map((f) => `         ${f}`),
    );
  }
  out.push(
    "",
    `   With CONFIG_DMABUF_MOVE_NOTIFY=n the same map answers ${lc.withoutMoveNotify.result}: ${lc.withoutMoveNotify.why}.`,
    "",
    `   Why the NIC may use PCI bus addresses:`,
    "",
  );
  out.push(
    `   Can the RDMA NIC ${d.spdk.nic} write straight into the NVMe controller's CMB?`,
    `   The NVMe ${d.spdk.nvme} is owned by SPDK through vfio-pci; its CMB is BAR${d.spdk.cmb.bar} (${d.spdk.cmb.size} at ${d.spdk.cmb.cpuAddress}).`,
    "",
    indent(renderExplanation(d.spdk.explanation, "")).trimEnd(),
    "",
  );
  const r = d.spdk.overRdma;
  out.push(
    `   NVMe-oF by RDMA alone: SPDK registers the CMB and the doorbell page as MRs on ${r.nic}; a remote host then writes`,
    "   the data, the command and the doorbell with RDMA WRITEs and the controller never reads host memory for them.",
    "",
  );
  for (const [i, s] of r.steps.entries())
    out.push(
      `   ${String(i + 1).padStart(2)}. ${s.action}`,
      `       → ${s.result}`,
      ...s.facts.map((f) => `         ${f}`),
    );
  out.push(
    "",
    `   Bytes that reached the NVMe after a revoke: ${r.bytesIntoRevokedMemory}${r.bytesIntoRevokedMemory ? "  ← MODEL BUG" : ""}.`,
    "",
  );
  out.push(`2. Data direct: which function should DMA into GPU ${d.dataDirect.gpu}'s memory?`, "");
  for (const c of d.dataDirect.candidates) {
    out.push(
      `   ${c.label}: ${c.initiator} → ${c.target}`,
      `     ${c.mapType}, path ${c.pathType}: ${c.hops.join(" → ")}`,
      `     line rate ${c.bandwidthGBps?.toFixed(3) ?? "-"} GB/s, effective ${c.effectiveGBps?.toFixed(3) ?? "-"} GB/s, limited by ${c.limit}`,
    );
  }
  out.push(`   → the ${d.dataDirect.faster} path is faster on this machine.`, "");
  const dd = d.dataDirect.run;
  out.push(
    `   On the model: mlx5 on ${dd.nic} finds its DMA PF ${dd.dmaPf} by VUID ${dd.vuid} (VPD-R "VU");`,
    `   mlx5dv_get_data_direct_sysfs_path → ${dd.sysfsPath}`,
    "",
  );
  for (const g of dd.registrations)
    out.push(
      `   ${g.label}`,
      `     → ${g.result}${g.projected ? " [projected]" : ""}`,
      ...(g.writeStatus
        ? [
            `       1 MiB RDMA WRITE: ${g.writeStatus}`,
            `       effective ${g.effectiveGBps?.toFixed(3) ?? "-"} GB/s, limited by ${g.limit}`,
          ]
        : []),
    );
  out.push("");
  out.push("3. GPU to GPU: gpu0 writing into gpu1's VRAM aperture (gpu1 is bound to vfio-pci)", "");
  out.push(indent(renderExplanation(d.gpuToGpu, "")).trimEnd(), "", "   On the model:", "");
  for (const [i, s] of d.gpuToGpuRun.entries())
    out.push(
      `   ${String(i + 1).padStart(2)}. ${s.action}`,
      `       → ${s.result}`,
      ...s.facts.map((f) => `         ${f}`),
    );
  out.push("");
  out.push(`4. IOMMU groups (${d.iommuGroups.length}):`);
  for (const g of d.iommuGroups) out.push(`   group ${g.id}: ${g.devices.join(" ")}`);
  out.push("", "5. The whole P2P matrix:", "", indent(renderMatrix(d.matrix, "")));
  return out.join("\n");
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description("the main job on the built-in storage/RDMA host, told as a story")
    .option("--json", "machine-readable output")
    .action((opts: { json?: boolean }) =>
      guard(() => {
        const d = storageRdmaDemo();
        if (opts.json) printJson(d);
        else print(renderDemo(d));
      }),
    );
}
