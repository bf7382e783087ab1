import assert from "node:assert/strict";
import { test } from "node:test";
import { InputError } from "../../src/core/errors.js";
import {
  degradedFlag,
  lineRate,
  ncclBandwidth,
  PCIE_GENERATIONS,
  tlpRate,
  tlpSpaceRate,
  writeThroughput,
} from "../../src/perf/index.js";

const f = (x: number, d: number) => x.toFixed(d);

// pcie-bandwidth.md §2 table, columns x1 x2 x4 x8 x16
const TABLE: Record<number, string[]> = {
  1: ["0.2500", "0.5000", "1.0000", "2.0000", "4.0000"],
  2: ["0.5000", "1.0000", "2.0000", "4.0000", "8.0000"],
  3: ["0.9846", "1.9692", "3.9385", "7.8769", "15.7538"],
  4: ["1.9692", "3.9385", "7.8769", "15.7538", "31.5077"],
  5: ["3.9385", "7.8769", "15.7538", "31.5077", "63.0154"],
  6: ["8.0000", "16.0000", "32.0000", "64.0000", "128.0000"],
  7: ["16.0000", "32.0000", "64.0000", "128.0000", "256.0000"],
};

test("BW-1 lineRate for Gen1–7 × x1/x2/x4/x8/x16 equals the §2 table (4 decimals)", () => {
  for (const g of PCIE_GENERATIONS) {
    [1, 2, 4, 8, 16].forEach((w, i) => {
      assert.equal(f(lineRate(`Gen${g.gen}`, w), 4), TABLE[g.gen][i], `Gen${g.gen} x${w} by name`);
      assert.equal(f(lineRate(g.gts, w), 4), TABLE[g.gen][i], `Gen${g.gen} x${w} by GT/s`);
    });
  }
  // x12 and x32 follow the same formula
  assert.equal(f(lineRate("Gen4", 32), 4), "63.0154");
  assert.equal(f(lineRate("Gen4", 12), 4), "23.6308");
  assert.throws(() => lineRate(3, 16), InputError);
  assert.throws(() => lineRate("Gen9", 16), InputError);
});

test("BW-2 Gen4 x16 capable link trained at Gen3 x8 → 7.877, flagged degraded (capable Gen4 x16)", () => {
  const l = { speed: 8, width: 8, maxSpeed: 16, maxWidth: 16 };
  assert.equal(f(lineRate(l.speed, l.width), 3), "7.877");
  assert.equal(degradedFlag(l), "degraded (capable Gen4 x16)");
  assert.equal(degradedFlag({ speed: 16, width: 16, maxSpeed: 16, maxWidth: 16 }), undefined);
});

test("BW-3 --include-skp: Gen4 x16 256-B 4-DW writes → 28.729; default → 28.807", () => {
  const link = { speed: 16, width: 16 };
  assert.equal(f(writeThroughput(link, { payload: 256, header: { dw: 4 } }).gbps, 3), "28.807");
  assert.equal(
    f(writeThroughput({ ...link, includeSkp: true }, { payload: 256, header: { dw: 4 } }).gbps, 3),
    "28.729",
  );
  // Gen1/2 use 0.003
  assert.equal(f(tlpRate({ speed: 2.5, width: 1, includeSkp: true }), 5), "0.24925");
});

test("BW-8 Gen6 x16 FM line rate 128.000, TLP space 118.000; x4 29.500, x8 59.000, x1 7.375", () => {
  assert.equal(f(lineRate("Gen6", 16), 3), "128.000");
  assert.equal(f(tlpSpaceRate("Gen6", 16), 3), "118.000");
  assert.equal(f(tlpSpaceRate("Gen6", 8), 3), "59.000");
  assert.equal(f(tlpSpaceRate("Gen6", 4), 3), "29.500");
  assert.equal(f(tlpSpaceRate("Gen6", 1), 3), "7.375");
  // Gen6 is flit mode whether or not the flag says so
  assert.equal(f(tlpRate({ speed: 64, width: 16 }), 3), "118.000");
});

test("BW-30 NCCL comparison: 24.000 beside 28.807 (Gen4 x16), 48.000 beside 57.614 (Gen5 x16)", () => {
  const pair = (speed: number) => ({
    ours: f(writeThroughput({ speed, width: 16 }, { payload: 256 }).gbps, 3),
    nccl: f(ncclBandwidth(speed, 16)!, 3),
  });
  assert.deepEqual(pair(16), { ours: "28.807", nccl: "24.000" });
  assert.deepEqual(pair(32), { ours: "57.614", nccl: "48.000" });
  assert.equal(ncclBandwidth(8, 16), 12);
  assert.equal(ncclBandwidth(64, 16), 96);
  assert.equal(ncclBandwidth(128, 16), null);
});
