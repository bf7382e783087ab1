/** `peerdma run`: the shipped scenarios, expectations, bad input, and the published schema. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { InputError } from "../../src/core/errors.js";
import { runScenarioFile } from "../../src/scenario/load.js";
import { scenarioJsonSchema } from "../../src/scenario/schema.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const DIR = join(ROOT, "scenarios");

function peerdma(...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "src/cli/main.ts"), ...args], {
    encoding: "utf8",
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function tmp(name: string, text: string): string {
  const f = join(mkdtempSync(join(tmpdir(), "peerdma-scn-")), name);
  writeFileSync(f, text);
  return f;
}

for (const f of readdirSync(DIR).filter((x) => x.endsWith(".yaml"))) {
  const ids = /^(K-\d+)/.exec(f)?.[1];
  test(`${ids ? `${ids} ` : ""}scenario ${f} runs with every expectation met`, () => {
    const r = runScenarioFile(join(DIR, f));
    const failed = r.steps
      .filter((s) => !s.ok)
      .map((s) => `${s.index + 1}. ${s.op}: ${JSON.stringify(s.expectations.filter((e) => !e.ok))}`);
    assert.deepEqual(failed, []);
    assert.equal(r.ok, true);
    assert.deepEqual(r.violations, []);
  });
}

test("a failing expectation → exit 1, the step and what was expected are named", () => {
  const f = tmp(
    "bad-expect.yaml",
    `machine: builtin:spec-f
steps:
  - { open: "0000:03:00.0", as: dev }
  - { export: { fd: dev, region: 0, ranges: [[0, 0x1000]] }, expect: { errno: EINVAL } }
`,
  );
  const r = peerdma("run", f);
  assert.equal(r.code, 1, r.err);
  assert.match(r.out, /FAIL {2}2\. export region 0 → ret 1 \(fd 1\)/);
  assert.match(r.out, /expected errno EINVAL, got 0/);
});

test("--json: one object per step with result and move_notify for every live attachment", () => {
  const r = peerdma("run", join(DIR, "K-115-revoke-and-restore.yaml"), "--json");
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  const revoke = j.steps[9];
  assert.deepEqual(revoke.move_notify, { A: 1, B: 1, C: 1 });
  assert.deepEqual(revoke.states, { X: "SUSPENDED", Y: "SUSPENDED" });
  assert.equal(j.steps[1].result.fd, 1);
});

test("a raw ioctl returns the argument after the call (EFAULT when the buffer is shorter than the copy)", () => {
  const f = tmp(
    "raw.yaml",
    `machine: builtin:spec-f
steps:
  - { open: "0000:03:00.0", as: dev }
  - { ioctl: VFIO_DEVICE_GET_REGION_INFO, fd: dev, arg: "20000000 00000000 00000000 00000000 0000000000000000 0000000000000000", expect: { errno: 0 } }
  - { ioctl: VFIO_DEVICE_FEATURE, fd: dev, arg: "18000000 0b0001", expect: { errno: EFAULT } }
`,
  );
  const r = runScenarioFile(f);
  assert.equal(r.ok, true, JSON.stringify(r.steps.map((s) => s.expectations)));
  const info = Buffer.from(r.steps[1].result.arg!, "hex");
  assert.equal(info.readUInt32LE(4) & 0x7, 0x7, "read | write | mmap");
  assert.equal(info.readBigUInt64LE(16), 0x100_0000n, "16 MiB");
  assert.equal(info.readBigUInt64LE(24), 0n, "region 0 at offset 0");
});

test("bad scenario input → InputError naming file and line; the CLI exits 2 without a stack", () => {
  const cases: [string, RegExp][] = [
    [`machine: builtin:spec-f\nsteps:\n  - { opne: "03:00.0" }\n`, /bad\.yaml:3/],
    [
      `machine: builtin:spec-f\nsteps:\n  - { open: "0000:03:00.0", as: dev }\n  - { close: nothere }\n`,
      /no fd named "nothere"/,
    ],
    [`machine: builtin:nope\nsteps:\n  - { open: "0000:03:00.0", as: d }\n`, /no built-in machine "nope"/],
    [`machine: builtin:spec-f\nsteps: []\n`, /at least one step/],
    [`machine: builtin:spec-f\nsteps:\n  - { ioctl: VFIO_FROB, fd: 0 }\n`, /unknown ioctl "VFIO_FROB"/],
    [
      `machine: builtin:spec-f\nsteps:\n  - { open: "0000:09:00.0", as: d }\n`,
      /no PCI function 0000:09:00\.0/,
    ],
    [`machine: [unclosed\n`, /bad\.yaml:\d+/],
  ];
  for (const [text, want] of cases) {
    const f = tmp("bad.yaml", text);
    assert.throws(
      () => runScenarioFile(f),
      (e: unknown) => e instanceof InputError && want.test(e.message),
      text,
    );
    const r = peerdma("run", f);
    assert.equal(r.code, 2, text);
    assert.match(r.err, want);
    assert.doesNotMatch(r.err, /\bat .*\.ts:\d+/);
  }
});

test("docs/scenario.schema.json is the schema the runner validates with", () => {
  const published = JSON.parse(readFileSync(join(ROOT, "docs/scenario.schema.json"), "utf8"));
  assert.deepEqual(published, JSON.parse(JSON.stringify(scenarioJsonSchema())));
});
