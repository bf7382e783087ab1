import assert from "node:assert/strict";
import { test } from "node:test";
import { InputError } from "../../src/core/errors.js";
import {
  decodeDevCtl,
  decodeSizeField,
  splitAtBoundary,
  splitCompletions,
  splitSummary,
  writeThroughput,
} from "../../src/perf/index.js";

const f = (x: number, d: number) => x.toFixed(d);
const MiB = 1 << 20;

test("BW-9 1 MiB write at 0x10000F80, MPS 256 → 4097 TLPs (128, 4095×256, 128), Gen4 x16 29.224", () => {
  const chunks = splitAtBoundary(0x10000f80n, MiB, 256);
  assert.equal(chunks.length, 4097);
  assert.equal(chunks[0].length, 128);
  assert.equal(chunks[4096].length, 128);
  assert.ok(chunks.slice(1, 4096).every((c) => c.length === 256));
  const s = splitSummary(0x10000f80n, MiB, 256);
  assert.equal(s.count, 4097);
  assert.deepEqual(s.groups, [
    { length: 128, count: 2 },
    { length: 256, count: 4095 },
  ]);
  // address below 4 GiB → 3-DW headers
  const r = writeThroughput({ speed: 16, width: 16 }, { address: 0x10000f80n, length: MiB, mps: 256 });
  assert.equal(r.tlps, 4097);
  assert.equal(f(r.efficiency, 6), "0.927520");
  assert.equal(f(r.gbps, 3), "29.224");
});

test("BW-10 8 KiB write at 0x0FF0, MPS 512 → 16 B, 15 × 512, 496; none crosses 0x1000 or 0x2000", () => {
  const chunks = splitAtBoundary(0x0ff0, 8192, 512);
  assert.deepEqual(
    chunks.map((c) => c.length),
    [16, ...Array(15).fill(512), 496],
  );
  assert.equal(chunks[0].address + BigInt(chunks[0].length), 0x1000n);
  for (const c of chunks) {
    const end = c.address + BigInt(c.length) - 1n;
    assert.equal(c.address / 0x1000n, end / 0x1000n, `chunk at ${c.address.toString(16)} crosses 4 KiB`);
  }
});

test("BW-11 read 512 B at 0x1030, RCB 64, max completion 256, 'max' → (208, BC 512, LA 0x30), (256, BC 304, LA 0), (48, BC 48, LA 0)", () => {
  const c = splitCompletions(0x1030n, 512, { rcb: 64, maxCpl: 256, policy: "max" });
  assert.deepEqual(
    c.map(({ length, byteCount, lowerAddress }) => ({ length, byteCount, lowerAddress })),
    [
      { length: 208, byteCount: 512, lowerAddress: 0x30 },
      { length: 256, byteCount: 304, lowerAddress: 0x00 },
      { length: 48, byteCount: 48, lowerAddress: 0x00 },
    ],
  );
  // data-direction η with 3-DW completion headers and 8 bytes of framing (§6)
  assert.equal(f(512 / (512 + c.length * 20), 6), "0.895105");
});

test("BW-12 same read with 'rcb' → 9 completions: 16, seven of 64, 48; LAs 0x30 then 0x40", () => {
  const c = splitCompletions(0x1030n, 512, { rcb: 64, maxCpl: 256, policy: "rcb" });
  assert.deepEqual(
    c.map((x) => x.length),
    [16, 64, 64, 64, 64, 64, 64, 64, 48],
  );
  assert.equal(c[0].lowerAddress, 0x30);
  assert.equal(c[1].lowerAddress, 0x40);
  assert.equal(c[0].byteCount, 512);
  assert.equal(f(512 / (512 + c.length * 20), 6), "0.739884");
});

test("BW-13 1 MiB read, MRRS 512 → 2048 read requests; MRRS 4096 → 256", () => {
  assert.equal(splitSummary(0, MiB, 512).count, 2048);
  assert.equal(splitSummary(0, MiB, 4096).count, 256);
  assert.equal(splitAtBoundary(0, MiB, 512).length, 2048);
});

test("BW-14 MPS/MRRS decode 0→128 … 5→4096; 6 and 7 are reserved → InputError naming the field", () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((c) => decodeSizeField(c, "MPS")),
    [128, 256, 512, 1024, 2048, 4096],
  );
  for (const code of [6, 7]) {
    assert.throws(
      () => decodeSizeField(code, "Max_Read_Request_Size", "lspci.txt:12"),
      (e: unknown) =>
        e instanceof InputError &&
        /Max_Read_Request_Size/.test(e.message) &&
        /reserved/.test(e.message) &&
        /lspci\.txt:12/.test(e.message),
    );
  }
  // Device Control: MPS in bits 7:5, MRRS in 14:12
  assert.deepEqual(decodeDevCtl((1 << 5) | (2 << 12)), { mps: 256, mrrs: 512 });
  assert.throws(
    () => decodeDevCtl(6 << 5),
    (e: unknown) => e instanceof InputError && /Max_Payload_Size/.test(e.message),
  );
  assert.throws(
    () => decodeDevCtl(7 << 12),
    (e: unknown) => e instanceof InputError && /Max_Read_Request_Size/.test(e.message),
  );
});

test("completion splitting: an unaligned read of 126 bytes at 0xDB with MPS 128 is 26 + 7 DW, never one 33-DW completion (found by the data-plane property, seed 108105233)", () => {
  const c = splitCompletions(0xdbn, 126, { rcb: 64, maxCpl: 128, policy: "max" });
  assert.deepEqual(
    c.map((x) => [Number(x.address), x.length, x.byteCount]),
    [
      [0xdb, 0x140 - 0xdb, 126],
      [0x140, 0xdb + 126 - 0x140, 0xdb + 126 - 0x140],
    ],
  );
});
