/** Path classes against a machine's own `nvidia-smi topo -m` (stelline fixture, ground truth). */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { buildMatrix } from "../../src/analysis/matrix.js";
import { loadSources } from "../../src/import/source.js";
import { Machine } from "../../src/machine/machine.js";

const DIR = new URL(
  "../../../shared/fixtures/real/stelline/asus-esc8000a-e12-epyc-genoa-4x-rtx6000ada/",
  import.meta.url,
).pathname;

/** The device each nvidia-smi label stands for (GROUND_TRUTH.txt's layout section). */
const LABELS: Record<string, string> = {
  GPU0: "0000:01:00.0",
  GPU1: "0000:41:00.0",
  GPU2: "0000:c1:00.0",
  GPU3: "0000:e1:00.0",
  NIC0: "0000:21:00.0",
  NIC1: "0000:21:00.1",
  NIC2: "0000:81:00.0",
  NIC3: "0000:81:00.1",
};

function parseTopoM(text: string): Map<string, string> {
  const lines = text.split("\n").filter((l) => l.trim());
  const cols = lines[0]
    .trim()
    .split(/\s+/)
    .filter((c) => /^(GPU|NIC)\d+$/.test(c));
  const out = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const cells = l.trim().split(/\s+/);
    if (!/^(GPU|NIC)\d+$/.test(cells[0])) continue;
    for (const [i, c] of cols.entries()) out.set(`${cells[0]}>${c}`, cells[1 + i]);
  }
  return out;
}

test("pathType equals the machine's own nvidia-smi topo -m for every GPU/NIC pair (stelline, from lspci -tv + -vvv + lscpu)", () => {
  const want = parseTopoM(readFileSync(`${DIR}ground_truth/nvidia-smi-topo-m.txt`, "utf8"));
  assert.equal(want.size, 64);
  const loaded = loadSources([`${DIR}lspci-tv.txt`, `${DIR}lspci-vvv-selected.txt`, `${DIR}lscpu.txt`]);
  const m = new Machine(loaded.fabric);
  const mx = buildMatrix(m);
  for (const [key, cls] of want) {
    const [a, b] = key.split(">");
    const p = mx.pairs.find((x) => x.provider === LABELS[a] && x.client === LABELS[b]);
    assert.ok(p, key);
    assert.equal(p.pathType, cls, `${key}: ours ${p.pathType}, nvidia-smi ${cls}`);
  }
  // AMD Genoa (family 0x19): the kernel allows every pair through the host bridges, as measured
  assert.equal(m.cpu.vendor, "AuthenticAMD");
  const gpu = (n: string) => LABELS[n];
  assert.equal(
    mx.pairs.find((x) => x.provider === gpu("GPU0") && x.client === gpu("GPU2"))?.mapType,
    "THRU_HOST_BRIDGE",
  );
});
