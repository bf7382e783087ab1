import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { DiagnosticLog } from "../../src/core/diagnostics.js";
import { KernelBug, KernelError } from "../../src/core/errors.js";
import { PCI_TPH_CTRL, TPH_MEM_TYPE_VM, tphStEntryOffset } from "../../src/pci/index.js";
import {
  MLX5_MKC_PCIE_TPH_NO_STEERING_TAG_INDEX,
  Mlx5St,
  mlx5StAllocIndex,
  mlx5StAllocIndexByTag,
  mlx5StCreate,
  mlx5StDeallocIndex,
  mlx5StDestroy,
  type StTableWriter,
} from "../../src/rdma/mlx5/st.js";
import { tphMachine } from "../helpers/tph-machine.js";

function kfail(f: () => unknown, errno: string): KernelError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof KernelError, `expected KernelError ${errno}, got ${String(caught)}`);
  assert.equal(caught.errnoName, errno, caught.message);
  return caught;
}

/** NIC PF: ST table in the capability with `entries` entries, DS mode, Root Port completer 1. */
function nic(entries = 64, extra: { idxDataLeak?: boolean } = {}) {
  const m = tphMachine({ tph: { deviceSpecificMode: true, stTable: "cap", stTableSize: entries } });
  const diag = new DiagnosticLog();
  const st = mlx5StCreate(m.core, m.dev, { mkeyPcieTph: true, diag, ...extra });
  const entry = (i: number) => m.dev.config.read16(tphStEntryOffset(m.cap, i));
  return { ...m, st, diag, entry };
}

test("TPH-15 table of 64: tag 0x10 → index 1, again → 1 (refcount 2), 0x20 → 2; entries hold 0x0010 / 0x0020", () => {
  const n = nic();
  assert.ok(n.st);
  assert.equal(n.dev.config.read32(n.cap + PCI_TPH_CTRL), 0x102, "mlx5_st_create enabled DS mode");
  assert.equal(mlx5StAllocIndexByTag(n.st, 0x10), 1);
  assert.equal(mlx5StAllocIndexByTag(n.st, 0x10), 1);
  assert.equal(n.st.refcount(1), 2);
  assert.equal(mlx5StAllocIndexByTag(n.st, 0x20), 2);
  assert.equal(n.entry(1), 0x0010);
  assert.equal(n.entry(2), 0x0020);
  assert.equal(n.entry(0), 0, `index ${MLX5_MKC_PCIE_TPH_NO_STEERING_TAG_INDEX} is never handed out`);
  assert.deepEqual(n.st.inUse(), [1, 2]);
});

test("TPH-16 63 distinct tags fill indexes 1..63; a 64th distinct tag → -EBUSY (a known tag still succeeds)", () => {
  const n = nic();
  const st = n.st!;
  for (let t = 0; t < 63; t++) assert.equal(st.allocIndexByTag(0x100 + t), t + 1);
  assert.equal(n.entry(63), 0x100 + 62);
  kfail(() => st.allocIndexByTag(0xffff), "EBUSY");
  assert.equal(st.allocIndexByTag(0x100), 1);
  assert.equal(st.refcount(1), 2);
  assert.equal(st.stats().inUse, 63);
  assert.equal(n.core.state(n.dev).enabled, true, "exhaustion does not touch TPH");
});

test("TPH-17 dealloc(1) twice after TPH-15 → index 1 free; next new tag 0x30 gets 1; entry rewritten only then", () => {
  const n = nic();
  const st = n.st!;
  st.allocIndexByTag(0x10);
  st.allocIndexByTag(0x10);
  st.allocIndexByTag(0x20);
  mlx5StDeallocIndex(st, 1);
  assert.equal(st.refcount(1), 1);
  mlx5StDeallocIndex(st, 1);
  assert.equal(st.refcount(1), 0);
  assert.deepEqual(st.inUse(), [2]);
  assert.equal(n.entry(1), 0x0010, "the table entry is left as it was");
  assert.equal(st.allocIndexByTag(0x30), 1);
  assert.equal(n.entry(1), 0x0030);
  // A third dealloc of a free index: WARN_ON_ONCE and -EINVAL, refcounts untouched.
  st.deallocIndex(1);
  kfail(() => st.deallocIndex(1), "EINVAL");
  kfail(() => st.deallocIndex(1), "EINVAL");
  assert.equal(n.diag.count("warn:mlx5_st_dealloc_index"), 1);
  assert.equal(st.refcount(1), 0);
});

test("TPH-18 table location none → direct mode: alloc_by_tag(0xF0) → 0xF0, no config write; dealloc → 0", () => {
  const m = tphMachine({ tph: { deviceSpecificMode: true, stTable: "none" } });
  const st = mlx5StCreate(m.core, m.dev, { mkeyPcieTph: true })!;
  assert.ok(st);
  assert.equal(st.directMode, true);
  assert.equal(m.core.state(m.dev).enabled, true);
  const before = new Uint8Array(m.dev.config.bytes);
  assert.equal(mlx5StAllocIndexByTag(st, 0xf0), 0xf0);
  assert.equal(mlx5StAllocIndexByTag(st, 0xf0), 0xf0);
  mlx5StDeallocIndex(st, 0xf0);
  mlx5StDeallocIndex(st, 0x1234); // nothing is tracked in direct mode
  assert.deepEqual(m.dev.config.bytes, before);
  assert.deepEqual(st.stats(), { inUse: 0, liveRecords: 0, leakedRecords: 0 });
});

test("TPH-19 table size 1, or table in MSI-X → no allocator; alloc/dealloc → -EOPNOTSUPP", () => {
  const one = tphMachine({ tph: { deviceSpecificMode: true, stTable: "cap", stTableSize: 1 } });
  const msix = tphMachine({
    tph: { deviceSpecificMode: true, stTable: "msix", stTableSize: 8 },
    msix: { tableSize: 8, tableBir: 0, tableOffset: 0 },
  });
  for (const m of [one, msix]) {
    const st = mlx5StCreate(m.core, m.dev, { mkeyPcieTph: true });
    assert.equal(st, null);
    assert.equal(m.core.state(m.dev).enabled, false, "pcie_enable_tph is not even tried");
    kfail(() => mlx5StAllocIndexByTag(st, 0xf0), "EOPNOTSUPP");
    kfail(() => mlx5StAllocIndex(st, TPH_MEM_TYPE_VM, 0), "EOPNOTSUPP");
    kfail(() => mlx5StDeallocIndex(st, 1), "EOPNOTSUPP");
  }
});

test("§5.3 mlx5_st_create: no firmware cap, no TPH capability, or enable failing → null; an SF shares its parent's", () => {
  const n = nic();
  assert.equal(mlx5StCreate(n.core, n.dev, { mkeyPcieTph: false }), null);
  const none = tphMachine({ tph: null });
  assert.equal(mlx5StCreate(none.core, none.dev, { mkeyPcieTph: true }), null);
  const noDs = tphMachine({ tph: { stTable: "cap", stTableSize: 64 } });
  assert.equal(mlx5StCreate(noDs.core, noDs.dev, { mkeyPcieTph: true }), null);
  const rp0 = tphMachine({ rpCompleter: 0 });
  assert.equal(mlx5StCreate(rp0.core, rp0.dev, { mkeyPcieTph: true }), null);
  assert.equal(mlx5StCreate(n.core, n.dev, { mkeyPcieTph: true, sfParent: { st: n.st } }), n.st);
  // Range [1, N−1].
  assert.equal(n.st!.indexMin, 1);
  assert.equal(n.st!.indexMax, 63);
});

test("§5.3 set_st_entry failing (TPH was disabled under the allocator): the new index is released, the error returned", () => {
  const n = nic();
  const st = n.st!;
  assert.equal(st.allocIndexByTag(0x10), 1);
  // Something else disables TPH on the function (e.g. a failing set_st_entry of another user).
  n.core.pcieDisableTph(n.dev);
  kfail(() => st.allocIndexByTag(0x20), "EINVAL");
  assert.deepEqual(st.inUse(), [1]);
  assert.equal(st.allocIndexByTag(0x10), 1, "a held tag needs no write");
});

test("§5.3 CPU flavour: the tag comes from pcie_tph_get_cpu_st first; its error is returned", () => {
  const m = tphMachine({
    tph: { deviceSpecificMode: true, stTable: "cap", stTableSize: 8 },
    core: { cpuSteeringTags: { 2: { volatile: { st8: 0x42 } } } },
  });
  const st = mlx5StCreate(m.core, m.dev, { mkeyPcieTph: true })!;
  assert.equal(st.allocIndex(TPH_MEM_TYPE_VM, 2), 1);
  assert.equal(st.tagOf(1), 0x42);
  assert.equal(st.allocIndexByTag(0x42), 1, "both flavours share indexes by tag");
  kfail(() => st.allocIndex(TPH_MEM_TYPE_VM, 3), "EINVAL");
});

test("§5.3 mlx5_st_destroy: TPH disabled, WARN when indexes are still allocated", () => {
  const n = nic();
  n.st!.allocIndexByTag(1);
  mlx5StDestroy(n.core, n.dev, n.st, false, n.diag);
  assert.equal(n.core.state(n.dev).enabled, false);
  assert.equal(n.diag.count("warn:mlx5_st_destroy"), 1);
});

test("§5.3 v7 patch 1: the pre-fix allocator leaks one record per freed index; the fixed one does not", () => {
  for (const idxDataLeak of [false, true]) {
    const st = new Mlx5St(undefined, { numEntries: 64, idxDataLeak });
    for (let i = 0; i < 100; i++) {
      const a = st.allocIndexByTag(i);
      st.allocIndexByTag(i);
      st.deallocIndex(a);
      st.deallocIndex(a);
    }
    assert.equal(st.isEmpty, true);
    assert.deepEqual(
      st.stats(),
      idxDataLeak
        ? { inUse: 0, liveRecords: 100, leakedRecords: 100 }
        : { inUse: 0, liveRecords: 0, leakedRecords: 0 },
    );
    if (idxDataLeak) assert.deepEqual(st.leakedRecords[7], { usecount: 0, tag: 7 });
  }
});

test("Mlx5St: a table that cannot hold a tag is a caller bug", () => {
  assert.throws(() => new Mlx5St(undefined, { numEntries: 1 }), KernelBug);
});

/* ---- properties ---- */

type Op =
  | { kind: "alloc"; tag: number }
  | { kind: "dealloc"; pick: number }
  | { kind: "bogus"; index: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant("alloc" as const), tag: fc.integer({ min: 0, max: 40 }) }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("dealloc" as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("bogus" as const), index: fc.integer({ min: 0, max: 70 }) }),
  },
);

test("property: matched alloc/dealloc sequences never leak, refcounts never go negative, one index per live tag", () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 300 }), fc.integer({ min: 2, max: 40 }), (ops, entries) => {
      const written = new Map<number, number>();
      const writer: StTableWriter = {
        setStEntry: (i, t) => {
          written.set(i, t);
        },
        getCpuSt: () => 0,
      };
      const st = new Mlx5St(writer, { numEntries: entries });
      const held: number[] = []; // one element per successful alloc not yet matched
      const expect = new Map<number, number>(); // index → references
      const check = () => {
        for (let i = 0; i <= entries; i++) {
          assert.ok(st.refcount(i) >= 0);
          assert.equal(st.refcount(i), expect.get(i) ?? 0, `index ${i}`);
        }
        const tags = st.inUse().map((i) => st.tagOf(i));
        assert.equal(new Set(tags).size, tags.length, "a tag lives in one index");
        for (const i of st.inUse()) assert.equal(written.get(i), st.tagOf(i), "entry holds its tag");
        assert.ok(!st.inUse().includes(0), "index 0 stays reserved");
      };
      for (const op of ops) {
        if (op.kind === "alloc") {
          try {
            const i = st.allocIndexByTag(op.tag);
            held.push(i);
            expect.set(i, (expect.get(i) ?? 0) + 1);
          } catch (e) {
            assert.ok(e instanceof KernelError && e.errnoName === "EBUSY");
            assert.equal(st.stats().inUse, entries - 1, "EBUSY only when full");
          }
        } else if (op.kind === "dealloc" && held.length) {
          const [i] = held.splice(op.pick % held.length, 1);
          st.deallocIndex(i);
          expect.set(i, expect.get(i)! - 1);
          if (!expect.get(i)) expect.delete(i);
        } else if (op.kind === "bogus" && !expect.has(op.index)) {
          assert.throws(() => st.deallocIndex(op.index), KernelError);
        }
        check();
      }
      for (const i of held.splice(0)) st.deallocIndex(i);
      assert.equal(st.isEmpty, true, "every index free once every alloc is matched");
      assert.deepEqual(st.stats(), { inUse: 0, liveRecords: 0, leakedRecords: 0 });
    }),
    { numRuns: 300 },
  );
});

test("property: through the PCI core, every allocated index's table entry holds its tag", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 80 }), (tags) => {
      const n = nic(16);
      const st = n.st!;
      const got: number[] = [];
      for (const t of tags)
        try {
          got.push(st.allocIndexByTag(t));
        } catch (e) {
          assert.ok(e instanceof KernelError && e.errnoName === "EBUSY");
        }
      for (const i of st.inUse()) assert.equal(n.entry(i), st.tagOf(i));
      for (const i of got) st.deallocIndex(i);
      assert.equal(st.isEmpty, true);
      assert.equal(n.core.state(n.dev).enabled, true);
    }),
    { numRuns: 100 },
  );
});
