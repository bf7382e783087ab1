import type { Command } from "commander";
import {
  buildMatrix,
  type Matrix,
  PATH_TYPE_LEGEND,
  type PathType,
  writeMatrixJson,
} from "../../analysis/index.js";
import { InputError } from "../../core/errors.js";
import { guard, jsonReplacer, print, writeStdoutSync } from "../io.js";
import { assumptionsNote, cpuNote, machineFromArgs } from "../machine-arg.js";
import { table } from "../table.js";

const MAP_ABBR = { BUS_ADDR: "BUS", THRU_HOST_BRIDGE: "HB", NOT_SUPPORTED: "-" } as const;

export function renderMatrix(mx: Matrix, note: string): string {
  const labels = mx.devices.map((_, i) => `D${i}`);
  const idx = new Map(mx.devices.map((d, i) => [d.bdf, i]));
  const cell = new Map(mx.pairs.map((p) => [`${p.provider}>${p.client}`, p]));
  const out: string[] = [];
  out.push(`Machine ${mx.machine}: ${mx.devices.length} endpoints. ${note}`, "");
  out.push(
    table(
      [
        ["", "BDF", "vendor:device", "class", "name"],
        ...mx.devices.map((d, i) => [
          labels[i],
          d.bdf,
          `${d.vendor.slice(2)}:${d.device.slice(2)}`,
          d.class.slice(2),
          d.name,
        ]),
      ],
      { header: true },
    ),
  );
  out.push("", "Path classes (as nvidia-smi topo -m):", "");
  const grid = (f: (p: ReturnType<typeof cell.get> & object) => string) =>
    table(
      [
        ["", ...labels],
        ...mx.devices.map((a, i) => [labels[i], ...mx.devices.map((b) => f(cell.get(`${a.bdf}>${b.bdf}`)!))]),
      ],
      {
        indent: "  ",
      },
    );
  out.push(grid((p) => p.pathType));
  out.push(
    "",
    "Kernel P2PDMA verdict, provider (row) → client (column): BUS = BUS_ADDR, HB = THRU_HOST_BRIDGE, - = NOT_SUPPORTED; number = distance",
    "",
  );
  out.push(grid((p) => (p.mapType === "NOT_SUPPORTED" ? "-" : `${MAP_ABBR[p.mapType]} ${p.distance}`)));
  out.push("", "Legend:");
  for (const k of Object.keys(PATH_TYPE_LEGEND) as PathType[])
    out.push(`  ${k.padEnd(4)} = ${PATH_TYPE_LEGEND[k]}`);
  void idx;
  return out.join("\n");
}

export function renderPairs(mx: Matrix): string {
  const nccl = mx.pairs.some((p) => p.ncclGBps !== undefined);
  return table(
    [
      [
        "provider",
        "client",
        "map type",
        "dist",
        "path",
        "line GB/s",
        "eff. GB/s",
        ...(nccl ? ["NCCL GB/s"] : []),
        "limit",
        "reason",
      ],
      ...mx.pairs
        .filter((p) => p.provider !== p.client)
        .map((p) => [
          p.provider,
          p.client,
          p.mapType,
          p.distance === null ? "-" : String(p.distance),
          p.pathType,
          p.bandwidthGBps === null ? "-" : p.bandwidthGBps.toFixed(3),
          p.effectiveGBps === null ? "-" : p.effectiveGBps.toFixed(3),
          ...(nccl ? [p.ncclGBps == null ? "-" : p.ncclGBps.toFixed(3)] : []),
          p.limit,
          p.reason,
        ]),
    ],
    { header: true },
  );
}

export function registerMatrix(program: Command): void {
  program
    .command("matrix")
    .description(
      "every ordered (provider, client) pair of endpoints: kernel map type, distance, path class, bandwidth",
    )
    .argument("<source...>", "builtin:<name>, a machine file (YAML/JSON), or a topology source")
    .option("--json", "machine-readable output (DESIGN.md contract)")
    .option("--pairs", "also list every pair with bandwidth, limit and reason (text mode)")
    .option("--compare <model>", "print another model's bandwidth figure beside ours: nccl")
    .option("--cpu <cpu>", "host CPU when the source does not say: amd-zen | intel | <vendor>:<family>")
    .addHelpText(
      "after",
      `
Provider = the device whose BAR is the DMA target; client = the device that issues the DMA.
The verdict is the kernel's calc_map_type_and_dist(): BUS_ADDR when the two share an upstream
bridge and no ACS redirect (RR/CR/EC) is set on the way; THRU_HOST_BRIDGE when the traffic must
cross the root complex and that is allowed (allow-listed host bridge, or AMD Zen CPU);
NOT_SUPPORTED otherwise. Bandwidth: line rate of the bottleneck link and the effective rate of
posted 256-byte writes (pcie-bandwidth.md).

Examples:
  peerdma matrix builtin:storage-rdma
  peerdma matrix builtin:spec-f --json | jq '.pairs[] | select(.mapType=="BUS_ADDR")'
  peerdma matrix my-host.yaml --cpu amd-zen --pairs`,
    )
    .action((sources: string[], opts: { json?: boolean; pairs?: boolean; cpu?: string; compare?: string }) =>
      guard(() => {
        const { machine, loaded } = machineFromArgs(sources, opts);
        if (opts.compare && opts.compare !== "nccl")
          throw new InputError(`--compare ${opts.compare}: expected nccl`);
        const compare = opts.compare as "nccl" | undefined;
        if (opts.json) {
          // streamed: a 4,096-endpoint machine has 16.8 M pairs, never held in memory at once
          writeMatrixJson(machine, writeStdoutSync, {
            compare,
            replacer: jsonReplacer,
            extra: (mx) => ({
              machine: mx.machine,
              cpu: mx.cpu,
              sources: loaded.inputs,
              assumptions: loaded.unknowns,
              conflicts: loaded.conflicts,
            }),
          });
          return;
        }
        const mx = buildMatrix(machine, { compare });
        print(renderMatrix(mx, cpuNote(machine)));
        const note = assumptionsNote(loaded);
        if (note) print(`\n${note}`);
        if (opts.pairs || opts.compare) print(`\n${renderPairs(mx)}`);
      }),
    );
}
