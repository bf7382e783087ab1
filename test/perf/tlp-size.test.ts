import assert from "node:assert/strict";
import { test } from "node:test";
import {
  completionWireBytes,
  headerDwForAddress,
  nfmWireBytes,
  ohcDw,
  tlpEfficiency,
  tlpSpaceRate,
  writeThroughput,
} from "../../src/perf/index.js";

const f = (x: number, d: number) => x.toFixed(d);

// §3 table: payload → [4-DW request, 3-DW request or completion, 4-DW + ECRC]
const NFM: [number, string, string, string][] = [
  [64, "0.727273", "0.761905", "0.695652"],
  [128, "0.842105", "0.864865", "0.820513"],
  [256, "0.914286", "0.927536", "0.901408"],
  [512, "0.955224", "0.962406", "0.948148"],
  [1024, "0.977099", "0.980843", "0.973384"],
  [2048, "0.988417", "0.990329", "0.986513"],
  [4096, "0.994175", "0.995141", "0.993210"],
];

test("BW-4 NFM η for payloads 64…4096, headers 16 / 12 / 16+ECRC equal the §3 table (6 decimals)", () => {
  for (const [p, h16, h12, ecrc] of NFM) {
    assert.equal(f(tlpEfficiency(p, { dw: 4 }), 6), h16, `${p} 4-DW`);
    assert.equal(f(tlpEfficiency(p, { dw: 3 }), 6), h12, `${p} 3-DW`);
    assert.equal(f(p / completionWireBytes(p), 6), h12, `${p} completion`);
    assert.equal(f(tlpEfficiency(p, { dw: 4, ecrc: true }), 6), ecrc, `${p} 4-DW+ECRC`);
  }
  // Intel AN 456: 256 / 276 = 92 %
  assert.equal(f(tlpEfficiency(256, { dw: 3 }), 2), "0.93");
  assert.equal(nfmWireBytes(256, { dw: 3 }), 276);
});

test("BW-5 a write to 0xFFFF_F000 uses a 12-byte header, to 0x1_0000_0000 a 16-byte header", () => {
  assert.equal(headerDwForAddress(0xffff_f000n), 3);
  assert.equal(headerDwForAddress(0x1_0000_0000n), 4);
  assert.equal(nfmWireBytes(0, { address: 0xffff_f000 }) - 8, 12);
  assert.equal(nfmWireBytes(0, { address: 0x1_0000_0000n }) - 8, 16);
  // the write pattern takes the header from the transfer's address
  const below = writeThroughput({ speed: 16, width: 16 }, { address: 0xffff_f000n, length: 256, mps: 256 });
  const above = writeThroughput({ speed: 16, width: 16 }, { address: 0x1_0000_0000n, length: 256, mps: 256 });
  assert.equal(below.wireBytes, 256 + 12 + 8);
  assert.equal(above.wireBytes, 256 + 16 + 8);
});

test("BW-6 one ExtTPH prefix adds 4 bytes: Gen5 x16 256-B 4-DW writes → 56.803", () => {
  const r = writeThroughput({ speed: 32, width: 16 }, { payload: 256, header: { dw: 4, prefixes: 1 } });
  assert.equal(r.wireBytes, 284);
  assert.equal(f(r.gbps, 3), "56.803");
});

// §4.2 table: [label, payload, header options, η, Gen6 x16 GB/s]
const FM: [string, number, Parameters<typeof tlpEfficiency>[1], string, string][] = [
  ["64-B completion", 64, { dw: 3 }, "0.842105", "99.368"],
  ["128-B 64-bit write", 128, { dw: 4 }, "0.888889", "104.889"],
  ["256-B completion", 256, { dw: 3 }, "0.955224", "112.716"],
  ["256-B 64-bit write", 256, { dw: 4 }, "0.941176", "111.059"],
  ["256-B 64-bit write + OHC-B", 256, { dw: 4, ohcDW: ohcDw({ b: true }) }, "0.927536", "109.449"],
  ["256-B + OHC-B + ECRC", 256, { dw: 4, ohcDW: 1, ecrc: true }, "0.914286", "107.886"],
  ["512-B 64-bit write", 512, { dw: 4 }, "0.969697", "114.424"],
  ["512-B 64-bit write + OHC-B", 512, { dw: 4, ohcDW: 1 }, "0.962406", "113.564"],
];

test("BW-7 FM table of §4.2 (η 6 decimals, Gen6 x16 GB/s 3 decimals)", () => {
  const space = tlpSpaceRate("Gen6", 16);
  for (const [label, p, h, eta, gbps] of FM) {
    const e = tlpEfficiency(p, h, true);
    assert.equal(f(e, 6), eta, label);
    assert.equal(f(space * e, 3), gbps, label);
  }
  // a completion with Lower Address[1:0] ≠ 0 carries OHC-A5 in FM
  assert.equal(completionWireBytes(64, { flit: true, lowerAddress: 0x31 }), 64 + 16);
  assert.equal(completionWireBytes(64, { flit: true, lowerAddress: 0x30 }), 64 + 12);
});

test("BW-24 TPH on (OHC-B), FM Gen6 x16 256-B writes → 109.449 versus 111.059 without", () => {
  const link = { speed: 64, width: 16, flit: true };
  const withTph = writeThroughput(link, { payload: 256, header: { dw: 4, ohcDW: ohcDw({ b: true }) } });
  const without = writeThroughput(link, { payload: 256, header: { dw: 4 } });
  assert.equal(f(withTph.gbps, 3), "109.449");
  assert.equal(f(without.gbps, 3), "111.059");
});
