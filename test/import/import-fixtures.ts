/**
 * Shared by the text-importer tests: where the real fixtures are, reading them, and checks that a
 * built fabric is whole (every function reachable, bus numbers consistent, the model can read it).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { computeIommuGroups } from "../../src/iommu/index.js";
import type { Fabric } from "../../src/pci/fabric.js";
import { PCI_SECONDARY_BUS } from "../../src/pci/regs.js";

export const REAL = fileURLToPath(new URL("../../../shared/fixtures/real/", import.meta.url));
export const QEMU = fileURLToPath(new URL("../../../shared/fixtures/qemu/", import.meta.url));

export function readReal(rel: string): string {
  return readFileSync(REAL + rel, "utf8");
}

/** Every file below `dir` (relative to the real fixtures) whose name matches. */
export function realFiles(match: RegExp, dir = ""): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(REAL + d).sort()) {
      const rel = d ? `${d}/${name}` : name;
      if (statSync(REAL + rel).isDirectory()) walk(rel);
      else if (match.test(rel)) out.push(rel);
    }
  };
  walk(dir);
  return out;
}

/** Asserts the structural invariants every imported fabric must have, and that the model reads it. */
export function assertWholeFabric(fabric: Fabric, what = ""): void {
  const devs = fabric.devices();
  const seen = new Set<string>();
  for (const d of devs) {
    assert.ok(!seen.has(d.bdf), `${what}: ${d.bdf} listed twice`);
    seen.add(d.bdf);
    assert.ok(
      fabric.hostBridges.includes(d.hostBridge),
      `${what}: ${d.bdf} hangs off an unknown host bridge`,
    );
    assert.equal(fabric.find(d.bdf), d, `${what}: ${d.bdf} not found by BDF`);
    if (d.subordinate) {
      assert.equal(d.subordinate.self, d, `${what}: ${d.bdf} secondary bus points elsewhere`);
      assert.equal(
        d.config.read8(PCI_SECONDARY_BUS),
        d.subordinate.number,
        `${what}: ${d.bdf} secondary register`,
      );
    }
    if (!d.bus.isRoot) assert.ok(d.bus.self?.isBridgeHeader, `${what}: ${d.bdf} below a non-bridge`);
    void d.kind;
    void d.link;
  }
  computeIommuGroups(fabric);
}

/** lspci's GB/s for a link, the way hwloc computes it. */
export function linkGBps(speed: number, width: number): number {
  const enc = speed <= 5 ? 0.8 : speed <= 32 ? 128 / 130 : 242 / 256;
  return (speed * width * enc) / 8;
}
