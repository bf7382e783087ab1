import assert from "node:assert/strict";
import { test } from "node:test";
import { BarMemory, HostMemory, SparseBytes } from "../../src/dataplane/index.js";
import { BDF, specF } from "../helpers/spec-f.js";

test("sparse store: zeros until written, pages allocated on first write only", () => {
  const s = new SparseBytes(1n << 37n);
  assert.deepEqual(s.read(0x12345n, 8), new Uint8Array(8));
  assert.equal(s.pagesAllocated, 0);
  s.write(0xfffn, Uint8Array.of(1, 2, 3)); // straddles two pages
  assert.equal(s.pagesAllocated, 2);
  assert.deepEqual(s.read(0xffen, 5), Uint8Array.of(0, 1, 2, 3, 0));
  assert.deepEqual(s.allocatedPages(), [0n, 0x1000n]);
  s.write((1n << 37n) - 4096n, new Uint8Array(4096)); // the last page of a 128 GiB BAR
  assert.throws(() => s.read((1n << 37n) - 1n, 2), { name: "InputError" });
});

test("BAR memory: one store per (function, BAR) sized by the BAR; hooks decide store / drop / handled / CA and defer work", () => {
  const { dev } = specF();
  const mem = new BarMemory();
  const epa = dev.EPa;
  assert.equal(mem.size(epa, 2), 256n);
  assert.throws(() => mem.size(epa, 1), { name: "InputError" }); // upper half of the 64-bit BAR0
  assert.throws(() => mem.write(epa, 2, 250, new Uint8Array(8)), { name: "InputError" });
  const order: string[] = [];
  mem.addHook(epa, 2, {
    start: 0x10,
    end: 0x14,
    write: (a) => {
      order.push(`ro ${a.offset}+${a.data.length}`);
      return "drop";
    },
  });
  mem.addHook(epa, 2, {
    start: 0x20,
    end: 0x24,
    write: (a) => {
      a.defer(() => order.push(`deferred sees ${mem.peek(epa, 2, 0x20, 1)[0]}`));
      return "store";
    },
  });
  mem.addHook(epa, 2, { start: 0x30, end: 0x34, write: () => "ca", read: () => "ca" });
  assert.throws(() => mem.addHook(epa, 2, { start: 0x12, end: 0x22 }), { name: "InputError" });
  const data = Uint8Array.from({ length: 0x20 }, (_, i) => i + 1);
  assert.equal(mem.write(epa, 2, 0x08, data), "SC");
  assert.deepEqual(order, ["ro 16+4", "deferred sees 25"]);
  assert.deepEqual([...mem.peek(epa, 2, 0x10, 4)], [0, 0, 0, 0]); // dropped
  assert.equal(mem.peek(epa, 2, 0x14, 1)[0], 0x0d); // around the hook: stored
  assert.equal(mem.write(epa, 2, 0x30, new Uint8Array(4)), "CA");
  assert.equal(mem.read(epa, 2, 0x30, 4).status, "CA");
  assert.equal(mem.read(epa, 2, 0x08, 4).status, "SC");
  assert.equal(mem.pagesAllocated(dev.EPa, 0), 0);
  assert.equal(epa.bdf, BDF.EPa);
});

test("host memory: only inside the RAM ranges", () => {
  const ram = new HostMemory([{ start: 0x1000n, size: 0x2000n }]);
  ram.write(0x1ffen, Uint8Array.of(9, 9));
  assert.deepEqual(ram.read(0x1ffen, 2), Uint8Array.of(9, 9));
  assert.throws(() => ram.write(0x2fffn, Uint8Array.of(1, 2)), { name: "InputError" });
  assert.equal(ram.rangeAt(0x3000n), null);
  assert.equal(ram.nextStart(0n), 0x1000n);
});
