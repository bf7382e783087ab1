import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { route } from "../../src/analysis/route.js";
import { fabricFromDescription } from "../../src/import/machine-file.js";
import { MachineSchema } from "../../src/import/machine-schema.js";
import { computeIommuGroups } from "../../src/iommu/groups.js";
import { calcMapTypeAndDist, P2pdma } from "../../src/p2pdma/index.js";
import { DEFAULT_CPU } from "../../src/pci/fabric.js";
import { machineArb } from "../helpers/random-fabric.js";

const build = (m: unknown) => fabricFromDescription(MachineSchema.parse(m));

test("property: map type and distance are symmetric in provider and client", () => {
  fc.assert(
    fc.property(machineArb, (m) => {
      const f = build(m);
      const cpu = f.cpu ?? DEFAULT_CPU;
      const eps = f.endpoints();
      for (const a of eps)
        for (const b of eps) {
          const ab = calcMapTypeAndDist(a, b, cpu);
          const ba = calcMapTypeAndDist(b, a, cpu);
          assert.equal(ab.type, ba.type, `${a.bdf} ↔ ${b.bdf}`);
          assert.equal(ab.dist, ba.dist);
        }
    }),
    { numRuns: 150 },
  );
});

test("property: the per-pair cache never changes a verdict", () => {
  fc.assert(
    fc.property(machineArb, (m) => {
      const f = build(m);
      const cpu = f.cpu ?? DEFAULT_CPU;
      const p2p = new P2pdma({ cpu });
      const eps = f.endpoints();
      for (const p of eps) p2p.init(p);
      for (let round = 0; round < 2; round++)
        for (const p of eps)
          for (const c of eps) {
            const prov = p2p.provider(p, 0)!;
            assert.equal(p2p.mapType(prov, c), calcMapTypeAndDist(p, c, cpu).type);
          }
    }),
    { numRuns: 100 },
  );
});

test("property: distance is the number of devices on each side below the common upstream bridge (or whole chains)", () => {
  fc.assert(
    fc.property(machineArb, (m) => {
      const f = build(m);
      const cpu = f.cpu ?? DEFAULT_CPU;
      for (const a of f.endpoints())
        for (const b of f.endpoints()) {
          const r = route(a, b);
          const devs = r.steps.filter((s) => s.kind === "device").length;
          // with a common ancestor the route lists it once; without one, every device of both chains
          const expected = r.commonAncestor ? devs - 1 : devs;
          assert.equal(calcMapTypeAndDist(a, b, cpu).dist, a === b ? 0 : expected, `${a.bdf} → ${b.bdf}`);
        }
    }),
    { numRuns: 150 },
  );
});

test("property: BUS_ADDR implies a common upstream bridge; ACS redirect there or below forces the host bridge", () => {
  fc.assert(
    fc.property(machineArb, (m) => {
      const f = build(m);
      const cpu = f.cpu ?? DEFAULT_CPU;
      for (const a of f.endpoints())
        for (const b of f.endpoints()) {
          const v = calcMapTypeAndDist(a, b, cpu);
          if (v.type === "BUS_ADDR") assert.ok(v.commonAncestor && v.acsPath.length === 0);
          if (v.acsPath.length) assert.notEqual(v.type, "BUS_ADDR");
        }
    }),
    { numRuns: 150 },
  );
});

test("property: every function lands in exactly one IOMMU group; ids are 0..n-1", () => {
  fc.assert(
    fc.property(machineArb, (m) => {
      const f = build(m);
      const groups = computeIommuGroups(f);
      const all = groups.flatMap((g) => g.devices);
      assert.equal(all.length, f.devices().length);
      assert.equal(new Set(all).size, all.length);
      assert.deepEqual(
        groups.map((g) => g.id),
        groups.map((_, i) => i),
      );
    }),
    { numRuns: 150 },
  );
});
