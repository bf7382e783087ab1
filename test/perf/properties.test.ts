import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  lineRate,
  maxMinShare,
  PCIE_GENERATIONS,
  splitAtBoundary,
  splitCompletions,
  splitSummary,
  writeThroughput,
} from "../../src/perf/index.js";

const gts = fc.constantFrom(...PCIE_GENERATIONS.map((g) => g.gts));
const width = fc.constantFrom(1, 2, 4, 8, 12, 16, 32);
const pow2 = fc.constantFrom(128, 256, 512, 1024, 2048, 4096);
const address = fc.bigInt({ min: 0n, max: (1n << 48n) - 1n });

test("property: the effective rate never exceeds the line rate", () => {
  fc.assert(
    fc.property(
      gts,
      width,
      fc.integer({ min: 1, max: 4096 }),
      fc.record({
        dw: fc.constantFrom(3 as const, 4 as const),
        ecrc: fc.boolean(),
        prefixes: fc.integer({ min: 0, max: 4 }),
        ohcDW: fc.integer({ min: 0, max: 7 }),
      }),
      fc.boolean(),
      fc.boolean(),
      fc.constantFrom(0, 0.5, 1, 2),
      (speed, w, payload, header, flit, bidirectional, dllpPerTlp) => {
        const r = writeThroughput({ speed, width: w, flit }, { payload, header, bidirectional, dllpPerTlp });
        assert.ok(r.gbps <= lineRate(speed, w) + 1e-9);
        assert.ok(r.gbps > 0);
      },
    ),
  );
});

test("property: splitting conserves bytes, respects the size and never crosses 4 KiB", () => {
  fc.assert(
    fc.property(address, fc.integer({ min: 0, max: 1 << 16 }), pow2, (a, len, size) => {
      const chunks = splitAtBoundary(a, len, size);
      assert.equal(
        chunks.reduce((s, c) => s + c.length, 0),
        len,
      );
      let next = a;
      for (const c of chunks) {
        assert.equal(c.address, next);
        assert.ok(c.length > 0 && c.length <= size);
        assert.equal(c.address / 4096n, (c.address + BigInt(c.length) - 1n) / 4096n);
        next = c.address + BigInt(c.length);
      }
      const s = splitSummary(a, len, size);
      assert.equal(s.count, chunks.length);
      assert.equal(
        s.groups.reduce((t, g) => t + g.length * g.count, 0),
        len,
      );
    }),
  );
});

test("property: completions conserve bytes, end on RCB boundaries (but the last) and count Byte Count down", () => {
  fc.assert(
    fc.property(
      address,
      fc.integer({ min: 1, max: 4096 }),
      fc.constantFrom(64, 128),
      pow2,
      fc.constantFrom("max" as const, "rcb" as const),
      (a, len, rcb, maxCpl, policy) => {
        const cpl = splitCompletions(a, len, { rcb, maxCpl, policy });
        let remaining = len;
        cpl.forEach((c, i) => {
          assert.equal(c.byteCount, remaining);
          assert.equal(c.lowerAddress, Number(c.address & 0x7fn));
          assert.ok(c.length > 0 && c.length <= maxCpl);
          // the Length field (whole DWs from the DW of the first byte) is what MPS bounds
          const dws = (c.address + BigInt(c.length) + 3n) / 4n - c.address / 4n;
          assert.ok(Number(dws) * 4 <= maxCpl, `${dws} DW > ${maxCpl} bytes at ${c.address}`);
          if (i < cpl.length - 1) assert.equal((c.address + BigInt(c.length)) % BigInt(rcb), 0n);
          remaining -= c.length;
        });
        assert.equal(remaining, 0);
      },
    ),
  );
});

test("property: max–min shares never exceed any link's capacity or a flow's cap, and fill a bottleneck", () => {
  const scenario = fc
    .record({
      caps: fc.array(fc.double({ min: 0.5, max: 300, noNaN: true }), { minLength: 1, maxLength: 5 }),
      flows: fc.array(
        fc.record({
          uses: fc.array(fc.tuple(fc.nat(4), fc.double({ min: 1, max: 3, noNaN: true })), {
            minLength: 1,
            maxLength: 4,
          }),
          cap: fc.option(fc.double({ min: 0.1, max: 200, noNaN: true }), { nil: undefined }),
        }),
        { minLength: 1, maxLength: 6 },
      ),
    })
    .map(({ caps, flows }) => ({
      links: caps.map((c, i) => ({ id: `l${i}`, capacityGBps: c })),
      flows: flows.map((fl, i) => {
        // one use per link: keep the first use of each
        const links = fl.uses
          .map(([l, ratio]) => ({ link: `l${l % caps.length}`, wireRatio: ratio }))
          .filter((u, k, all) => all.findIndex((v) => v.link === u.link) === k);
        return { id: `f${i}`, links, capGBps: fl.cap };
      }),
    }));
  fc.assert(
    fc.property(scenario, ({ links, flows }) => {
      const rates = maxMinShare(links, flows);
      for (const l of links) {
        const used = flows.reduce(
          (s, fl) =>
            s +
            fl.links.filter((u) => u.link === l.id).reduce((a, u) => a + rates.get(fl.id)! * u.wireRatio, 0),
          0,
        );
        assert.ok(used <= l.capacityGBps * (1 + 1e-9), `link ${l.id} over capacity`);
      }
      for (const fl of flows) {
        const r = rates.get(fl.id)!;
        if (fl.capGBps !== undefined) assert.ok(r <= fl.capGBps * (1 + 1e-9));
        // max–min: every flow is stopped by its cap or by a full link
        const capped = fl.capGBps !== undefined && r >= fl.capGBps * (1 - 1e-9);
        const blocked = fl.links.some((u) => {
          const used = flows.reduce(
            (s, g) =>
              s +
              g.links
                .filter((v) => v.link === u.link)
                .reduce((a, v) => a + rates.get(g.id)! * v.wireRatio, 0),
            0,
          );
          return used >= links.find((l) => l.id === u.link)!.capacityGBps * (1 - 1e-9);
        });
        assert.ok(capped || blocked, `flow ${fl.id} could still grow`);
      }
    }),
  );
});
