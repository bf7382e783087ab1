/** rdma-data-direct.md §2: the RDMA knobs and how they map onto the machine's kernel profile. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InputError } from "../../src/core/errors.js";
import { parseMachineFile } from "../../src/import/machine-file.js";
import { Machine } from "../../src/machine/machine.js";
import {
  DEFAULT_RDMA_PROFILE,
  machineForProfile,
  machineKernelFor,
  Rdma,
  resolveRdmaProfile,
} from "../../src/rdma/index.js";
import { MACHINE_YAML, setup } from "./setup.js";

test("PROFILE defaults: 'v6.19', ddRevocablePinned false, ddRelaxedOrderingMkey true, methods and attribute present, ODP on", () => {
  assert.deepEqual(resolveRdmaProfile(), DEFAULT_RDMA_PROFILE);
  assert.equal(DEFAULT_RDMA_PROFILE.kernelProfile, "v6.19");
  assert.equal(DEFAULT_RDMA_PROFILE.ddRevocablePinned, false);
  assert.equal(DEFAULT_RDMA_PROFILE.ddRelaxedOrderingMkey, true);
  assert.equal(DEFAULT_RDMA_PROFILE.dataDirectTph, "carry");
});

test("PROFILE kernelProfile maps onto revokeSemantics ('v6.19' → move_notify, 'v7.0' → revocable_wait); a machine that disagrees is bad input", () => {
  assert.deepEqual(machineKernelFor(resolveRdmaProfile({ kernelProfile: "v7.0" })), {
    revokeSemantics: "revocable_wait",
  });
  assert.deepEqual(machineKernelFor(resolveRdmaProfile()), { revokeSemantics: "move_notify" });
  const { fabric } = parseMachineFile(MACHINE_YAML, "m.yaml");
  const { machine } = machineForProfile(fabric, { kernelProfile: "v7.0" });
  assert.equal(machine.kernel.revokeSemantics, "revocable_wait");
  assert.equal(machine.dmabuf.config.revocableWait, true);
  const plain = new Machine(parseMachineFile(MACHINE_YAML, "m.yaml").fabric);
  assert.throws(() => new Rdma(plain, { profile: { kernelProfile: "v7.0" } }), InputError);
  assert.throws(
    () =>
      machineForProfile(
        fabric,
        { kernelProfile: "v6.19" },
        { kernel: { revokeSemantics: "revocable_wait" } },
      ),
    InputError,
  );
});

test("PROFILE ddRevocablePinned needs 'v7.0': with 'v6.19' it is an InputError (exit 2)", () => {
  assert.throws(
    () => resolveRdmaProfile({ ddRevocablePinned: true }),
    (e) => e instanceof InputError && /projected/.test(e.message),
  );
  assert.throws(() => resolveRdmaProfile({ kernelProfile: "v7.1" as "v7.0" }), InputError);
  assert.throws(() => resolveRdmaProfile({ dataDirectTph: "maybe" as "carry" }), InputError);
  assert.doesNotThrow(() => resolveRdmaProfile({ kernelProfile: "v7.0", ddRevocablePinned: true }));
});

test("PROFILE everything produced under ddRevocablePinned is marked projected", () => {
  const s = setup({ rdma: { kernelProfile: "v7.0", ddRevocablePinned: true } });
  const mark = s.m.log.length;
  const mr = s.regDD()!;
  const k = s.kmr(mr);
  assert.equal(k.projected, true);
  assert.equal(k.mmkey!.projected, true);
  assert.equal(k.ddCrossedMr!.projected, true);
  assert.equal(k.ddCrossedMr!.mmkey!.projected, true);
  assert.equal(k.ddCrossedMr!.umem!.projected, true);
  const evs = s.m.log.since(mark).flatMap((e) => (e.event.kind === "rdma" ? [e.event] : []));
  const mrEvents = evs.filter((e) => ["mr-reg", "dd-list-add", "umem-map", "mkey-create"].includes(e.op));
  assert.ok(mrEvents.length >= 5);
  assert.ok(
    mrEvents.every((e) => e.projected === true),
    JSON.stringify(mrEvents),
  );
  const w = s.write(mr, 0x7f0000000000n, 64n);
  assert.ok(w.ok && w.projected === true);
  // the same registration upstream ('v7.0' without the knob) carries no marker
  const u = setup({ rdma: { kernelProfile: "v7.0" } });
  const m2 = u.regDD()!;
  assert.equal(u.kmr(m2).projected, undefined);
  const w2 = u.write(m2, 0x7f0000000000n, 64n);
  assert.ok(w2.ok && w2.projected === undefined);
});
