/**
 * `npm run bench`: every figure beside its baseline, measured in the same run.
 * Prints the machine it ran on first; README quotes the latest output.
 */
import { cpus, totalmem } from "node:os";
import { computeIommuGroups } from "../src/iommu/groups.js";
import { calcMapTypeAndDist, P2pdma } from "../src/p2pdma/index.js";
import { DEFAULT_CPU } from "../src/pci/fabric.js";
import { naiveMapType } from "./baseline.js";
import { fmtMs, report, rows, time } from "./harness.js";
import { syntheticFabric } from "./synthetic.js";

process.stdout.write(
  `peerdma bench — node ${process.version}, ${cpus()[0]?.model ?? "unknown CPU"} ×${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB\n\n`,
);

// --- P2PDMA all-pairs map type on a 1,024-endpoint fabric (issue: target < 1 s cold) ---
{
  const fabric = syntheticFabric(8, 4, 32);
  const eps = fabric.endpoints();
  const cpu = DEFAULT_CPU;
  const n = eps.length;
  const allow = (d: import("../src/pci/device.js").PciDev) => d.hostBridge.identityDevice?.device === 0x2020;
  let p2p = new P2pdma({ cpu });
  const cold = time(() => {
    p2p = new P2pdma({ cpu });
    for (const p of eps) p2p.init(p);
    for (const p of eps) {
      const prov = p2p.provider(p, 0)!;
      for (const c of eps) p2p.mapType(prov, c);
    }
  }, 3);
  const cached = time(() => {
    for (const p of eps) {
      const prov = p2p.provider(p, 0)!;
      for (const c of eps) p2p.mapType(prov, c);
    }
  }, 3);
  const naive = time(() => {
    for (const p of eps) for (const c of eps) naiveMapType(p, c, allow);
  }, 3);
  const calcOnly = time(() => {
    for (const p of eps) for (const c of eps) calcMapTypeAndDist(p, c, cpu);
  }, 3);
  const pairs = `${n}×${n}`;
  report({
    bench: `calc_map_type_and_dist all pairs, ${pairs}, no cache`,
    figure: fmtMs(calcOnly.ms),
    baseline: fmtMs(naive.ms),
    ratio: `${(calcOnly.ms / naive.ms).toFixed(2)}×`,
  });
  report({
    bench: `p2pdma all-pairs mapType, ${pairs}, cold (fills cache)`,
    figure: fmtMs(cold.ms),
    baseline: fmtMs(naive.ms),
    ratio: `${(cold.ms / naive.ms).toFixed(2)}×`,
    target: "< 1000 ms",
  });
  report({
    bench: `p2pdma all-pairs mapType, ${pairs}, cached`,
    figure: fmtMs(cached.ms),
    baseline: fmtMs(naive.ms),
    ratio: `${(cached.ms / naive.ms).toFixed(2)}×`,
  });

  // --- IOMMU groups for the same fabric, against recomputing with quirk lookups disabled ---
  const groups = time(() => computeIommuGroups(fabric), 5);
  const groupsNoQuirks = time(() => computeIommuGroups(fabric, { quirks: [] }), 5);
  report({
    bench: `iommu groups, ${fabric.devices().length} functions`,
    figure: fmtMs(groups.ms),
    baseline: fmtMs(groupsNoQuirks.ms),
    ratio: `${(groups.ms / groupsNoQuirks.ms).toFixed(2)}×`,
  });
}

if (process.argv.includes("--json")) process.stdout.write(`${JSON.stringify(rows)}\n`);
